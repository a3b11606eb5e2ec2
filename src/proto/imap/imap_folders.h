/*
 * Folder names between the network and folder.h (imap_folders.c), and the
 * handlers of the commands on folder names.
 */
#ifndef POSTD_IMAP_FOLDERS_H
#define POSTD_IMAP_FOLDERS_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/imap/imap_commands.h"

/*
 * The folder name in arg as UTF-8 ("INBOX" in any case becomes "INBOX"):
 * modified UTF-7 decoded unless UTF8=ACCEPT or IMAP4rev2 is enabled, a
 * trailing '/' dropped, validated by folder_name_valid(). False after
 * refusing the command (reply and log).
 */
bool imap_folder_name(struct imap_session *s, const struct imap_arg *arg,
		      char *out, size_t size);
/* Writes name as a quoted string, in modified UTF-7 unless UTF-8 is on. */
void imap_folder_write_name(struct imap_session *s, const char *name);

imap_handler_fn imap_cmd_create, imap_cmd_delete, imap_cmd_rename,
    imap_cmd_subscribe, imap_cmd_unsubscribe, imap_cmd_list, imap_cmd_lsub;

#endif
