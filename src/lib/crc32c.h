/*
 * CRC-32C (Castagnoli, RFC 3720 section 12.1, the checksum of SCTP and
 * iSCSI), as the PROXY protocol v2 uses it for its PP2_TYPE_CRC32C TLV.
 * Not zlib's crc32(): that one uses another polynomial.
 */
#ifndef POSTD_CRC32C_H
#define POSTD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * The CRC-32C of buf[0..len) continued from crc, the value returned for
 * the bytes before (0 to begin): crc32c(crc32c(0, a, n), b, m) is the
 * checksum of a followed by b. "123456789" gives 0xE3069283.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
