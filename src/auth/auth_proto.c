#include "auth/auth_proto.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* True if the array holds a NUL, so it can be read as a C string. */
#define AUTH_FIELD_TERMINATED(field)                                           \
	(memchr((field), '\0', sizeof(field)) != NULL)

static bool auth_reply_targets_valid(const struct auth_reply *reply);

bool auth_request_valid(const struct auth_request *req, size_t len)
{
	if (req == NULL || len != sizeof(*req))
		return false;
	if (req->version != AUTH_PROTO_VERSION)
		return false;
	switch (req->type) {
	case AUTH_REQUEST_PASSWORD:
	case AUTH_REQUEST_APOP:
	case AUTH_REQUEST_LOOKUP:
	case AUTH_REQUEST_CANCEL:
		break;
	default:
		return false;
	}
	return AUTH_FIELD_TERMINATED(req->peer) &&
	       AUTH_FIELD_TERMINATED(req->user) &&
	       AUTH_FIELD_TERMINATED(req->secret) &&
	       AUTH_FIELD_TERMINATED(req->challenge);
}

bool auth_reply_valid(const struct auth_reply *reply, size_t len)
{
	if (reply == NULL || len != sizeof(*reply))
		return false;
	if (reply->version != AUTH_PROTO_VERSION)
		return false;
	switch (reply->result) {
	case AUTH_RESULT_OK:
	case AUTH_RESULT_FAIL:
	case AUTH_RESULT_TEMPFAIL:
		break;
	default:
		return false;
	}
	if (reply->cause > AUTH_CAUSE_LAST)
		return false;
	return AUTH_FIELD_TERMINATED(reply->user) &&
	       AUTH_FIELD_TERMINATED(reply->extra) &&
	       auth_reply_targets_valid(reply);
}

/* Exactly target_count addresses of printable ASCII holding '@', then
 * only zeros; no remote bit past the last target; none unless OK. */
static bool auth_reply_targets_valid(const struct auth_reply *reply)
{
	size_t pos = 0;

	if (reply->target_count > AUTH_MAX_TARGETS ||
	    (reply->target_count > 0 && reply->result != AUTH_RESULT_OK))
		return false;
	if (reply->target_count < 64 &&
	    (reply->target_remote >> reply->target_count) != 0)
		return false;
	for (uint32_t i = 0; i < reply->target_count; i++) {
		const char *s = reply->targets + pos;
		const char *end = memchr(s, '\0', sizeof(reply->targets) - pos);
		size_t len;

		if (end == NULL)
			return false;
		len = (size_t)(end - s);
		if (len < 3 || memchr(s, '@', len) == NULL)
			return false;
		for (size_t k = 0; k < len; k++) {
			if ((unsigned char)s[k] <= 0x20 ||
			    (unsigned char)s[k] >= 0x7f)
				return false;
		}
		pos += len + 1;
	}
	for (; pos < sizeof(reply->targets); pos++) {
		if (reply->targets[pos] != '\0')
			return false;
	}
	return true;
}

int auth_reply_add_target(struct auth_reply *reply, const char *addr,
			  bool remote)
{
	size_t pos = 0, len = strlen(addr);

	if (reply->target_count >= AUTH_MAX_TARGETS)
		return -1;
	for (uint32_t i = 0; i < reply->target_count; i++)
		pos += strlen(reply->targets + pos) + 1;
	if (len + 1 > sizeof(reply->targets) - pos)
		return -1;
	memcpy(reply->targets + pos, addr, len + 1);
	if (remote)
		reply->target_remote |= (uint64_t)1 << reply->target_count;
	reply->target_count++;
	return 0;
}

const char *auth_reply_target(const struct auth_reply *reply, uint32_t i,
			      bool *remote_r)
{
	size_t pos = 0;

	for (uint32_t k = 0; k < i; k++)
		pos += strlen(reply->targets + pos) + 1;
	if (remote_r != NULL)
		*remote_r = (reply->target_remote >> i) & 1;
	return reply->targets + pos;
}

const char *auth_cause_str(enum auth_cause cause)
{
	switch (cause) {
	case AUTH_CAUSE_NONE:
		return "none";
	case AUTH_CAUSE_UNKNOWN_USER:
		return "unknown user";
	case AUTH_CAUSE_WRONG_PASSWORD:
		return "wrong password";
	case AUTH_CAUSE_BAD_HASH:
		return "malformed password hash";
	case AUTH_CAUSE_BAD_REQUEST:
		return "bad request";
	case AUTH_CAUSE_APOP_UNAVAILABLE:
		return "APOP needs a {PLAIN} password";
	case AUTH_CAUSE_INTERNAL:
		return "internal error";
	case AUTH_CAUSE_PEER_BUSY:
		return "too many authentication requests from this peer";
	case AUTH_CAUSE_BUSY:
		return "auth process busy";
	case AUTH_CAUSE_ALIAS_LOOP:
		return "alias loop";
	case AUTH_CAUSE_ALIAS_TOO_MANY:
		return "alias expands to too many addresses";
	case AUTH_CAUSE_USERDB_UNAVAILABLE:
		return "user database unavailable";
	}
	return "unknown cause";
}

int auth_recv_batch(int fd, void *bufs, size_t size, size_t count, size_t *lens)
{
	struct mmsghdr msgs[AUTH_RECV_BATCH];
	struct iovec iov[AUTH_RECV_BATCH];
	int n;

	if (count > AUTH_RECV_BATCH)
		count = AUTH_RECV_BATCH;
	memset(msgs, 0, sizeof(msgs));
	for (size_t i = 0; i < count; i++) {
		iov[i].iov_base = (char *)bufs + i * size;
		iov[i].iov_len = size;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	do {
		n = recvmmsg(fd, msgs, (unsigned)count,
			     MSG_DONTWAIT | MSG_TRUNC, NULL);
	} while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n;
	for (int i = 0; i < n; i++) {
		/* A zero-length datagram is how SOCK_SEQPACKET says the
		 * peer closed; what came before it is still handled. */
		if (msgs[i].msg_len == 0)
			return i;
		lens[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0
			      ? size + 1
			      : msgs[i].msg_len;
	}
	return n;
}
