#include "net/connlimit.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/log.h"
#include "net/conn.h"

struct connlimit_slot {
	uint32_t in_use;
	uint32_t total;
	uint32_t peer[CONNLIMIT_BUCKETS];
};

struct connlimit_table {
	uint32_t max_total;
	uint32_t max_per_peer;
	struct connlimit_slot slots[CONNLIMIT_SLOTS];
};

static struct connlimit_table *table;
static int my_slot = -1;

static uint32_t connlimit_bucket(const struct sockaddr *peer);

void connlimit_create(unsigned max_total, unsigned max_per_peer)
{
	void *p = mmap(NULL, sizeof(*table), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fatal("connlimit: mmap of %zu bytes failed", sizeof(*table));
	table = p;
	connlimit_set_caps(max_total, max_per_peer);
}

void connlimit_set_caps(unsigned max_total, unsigned max_per_peer)
{
	__atomic_store_n(&table->max_total, max_total, __ATOMIC_RELAXED);
	__atomic_store_n(&table->max_per_peer, max_per_peer, __ATOMIC_RELAXED);
}

int connlimit_slot_alloc(void)
{
	for (int i = 0; i < CONNLIMIT_SLOTS; i++) {
		if (!table->slots[i].in_use) {
			memset(&table->slots[i], 0, sizeof(table->slots[i]));
			table->slots[i].in_use = 1;
			return i;
		}
	}
	return -1;
}

void connlimit_slot_free(int slot)
{
	if (slot >= 0 && slot < CONNLIMIT_SLOTS)
		memset(&table->slots[slot], 0, sizeof(table->slots[slot]));
}

void connlimit_attach(int slot)
{
	my_slot = slot;
}

/* FNV-1a over the address bytes (the port is left out). */
static uint32_t connlimit_bucket(const struct sockaddr *peer)
{
	const unsigned char *p = NULL;
	size_t len = 0;
	uint32_t h = 2166136261u;

	if (peer->sa_family == AF_INET) {
		p = (const unsigned char *)&((const struct sockaddr_in *)peer)
			->sin_addr;
		len = 4;
	} else if (peer->sa_family == AF_INET6) {
		p = (const unsigned char *)&((const struct sockaddr_in6 *)peer)
			->sin6_addr;
		len = 16;
	}
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h % CONNLIMIT_BUCKETS;
}

bool connlimit_acquire(const struct sockaddr *peer, char *why, size_t why_size)
{
	uint32_t bucket, total = 0, from_peer = 0;
	uint32_t max_total, max_peer;

	if (table == NULL || my_slot < 0)
		return true;
	max_total = __atomic_load_n(&table->max_total, __ATOMIC_RELAXED);
	max_peer = __atomic_load_n(&table->max_per_peer, __ATOMIC_RELAXED);
	bucket = connlimit_bucket(peer);
	for (int i = 0; i < CONNLIMIT_SLOTS; i++) {
		total +=
		    __atomic_load_n(&table->slots[i].total, __ATOMIC_RELAXED);
		from_peer += __atomic_load_n(&table->slots[i].peer[bucket],
					     __ATOMIC_RELAXED);
	}
	if (total >= max_total) {
		snprintf(why, why_size,
			 "too many connections in total (max_connections %u)",
			 max_total);
		return false;
	}
	if (from_peer >= max_peer) {
		char addr[64];

		conn_format_addr(peer, addr, sizeof(addr));
		snprintf(why, why_size,
			 "too many connections from %s "
			 "(max_connections_per_peer %u)",
			 addr, max_peer);
		return false;
	}
	__atomic_add_fetch(&table->slots[my_slot].total, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&table->slots[my_slot].peer[bucket], 1,
			   __ATOMIC_RELAXED);
	return true;
}

void connlimit_release(const struct sockaddr *peer)
{
	uint32_t bucket;
	struct connlimit_slot *slot;

	if (table == NULL || my_slot < 0)
		return;
	bucket = connlimit_bucket(peer);
	slot = &table->slots[my_slot];
	if (slot->total > 0)
		__atomic_sub_fetch(&slot->total, 1, __ATOMIC_RELAXED);
	if (slot->peer[bucket] > 0)
		__atomic_sub_fetch(&slot->peer[bucket], 1, __ATOMIC_RELAXED);
}
