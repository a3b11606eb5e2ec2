/*
 * THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 section 3) over
 * arrays (imap_thread.h). The REFERENCES tree is kept as node arrays
 * with parent and sibling links; every pass over it is a loop with an
 * explicit stack or queue, so a hostile chain of References costs memory
 * proportional to the mailbox and never stack depth.
 */
#include "proto/imap/imap_thread.h"

#include <stdlib.h>
#include <string.h>

#include "lib/postd_limits.h"
#include "lib/xmalloc.h"

#define NONE SIZE_MAX

struct tnode {
	size_t msg; /* index into msgs, NONE for a dummy */
	size_t parent, first, last, prev, next;
	bool deleted;
};

struct tree {
	const struct imap_thread_msg *msgs;
	struct tnode *nodes;
	size_t count, cap;
};

/* A string -> node table (open addressing), for msg-ids and subjects. */
struct idtab {
	const char **keys;
	size_t *vals;
	size_t mask;
};

/* What siblings are sorted by: sent date, then sequence order. */
struct sortkey {
	time_t sent;
	size_t msg;
	size_t node;
	const char *subject;
};

static void idtab_init(struct idtab *t, size_t expected);
static void idtab_free(struct idtab *t);
static size_t *idtab_slot(struct idtab *t, const char *key);
static size_t node_new(struct tree *t, size_t msg);
static void node_unlink(struct tree *t, size_t c);
static void node_link(struct tree *t, size_t p, size_t c);
static bool would_loop(const struct tree *t, size_t p, size_t c);
static void link_references(struct tree *t, struct idtab *ids, size_t n);
static void prune(struct tree *t);
static void merge_subjects(struct tree *t);
static size_t first_real(const struct tree *t, size_t node);
static int sortkey_cmp(const void *a, const void *b);
static int subject_cmp(const void *a, const void *b);
static struct sortkey node_key(const struct tree *t, size_t node);
static void sort_children(struct tree *t, size_t parent);
static size_t *sorted_roots(struct tree *t, size_t *count_r);
static int write_thread(const struct tree *t, size_t root, size_t *stack,
			struct buf *out);

static void idtab_init(struct idtab *t, size_t expected)
{
	size_t size = 16;

	while (size < 2 * expected + 1)
		size *= 2;
	t->keys = xcalloc(size, sizeof(*t->keys));
	t->vals = xcalloc(size, sizeof(*t->vals));
	t->mask = size - 1;
}

static void idtab_free(struct idtab *t)
{
	free(t->keys);
	free(t->vals);
}

/* The value slot of key: NONE when the key is new (then it is added and
 * the caller stores the value). The table never fills: it is sized for
 * every key that can be added. */
static size_t *idtab_slot(struct idtab *t, const char *key)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	for (i = (size_t)h & t->mask; t->keys[i] != NULL; i = (i + 1) & t->mask)
		if (strcmp(t->keys[i], key) == 0)
			return &t->vals[i];
	t->keys[i] = key;
	t->vals[i] = NONE;
	return &t->vals[i];
}

static size_t node_new(struct tree *t, size_t msg)
{
	struct tnode *n;

	if (t->count == t->cap) {
		t->cap = t->cap == 0 ? 16 : 2 * t->cap;
		t->nodes = xreallocarray(t->nodes, t->cap, sizeof(*t->nodes));
	}
	n = &t->nodes[t->count];
	n->msg = msg;
	n->parent = n->first = n->last = n->prev = n->next = NONE;
	n->deleted = false;
	return t->count++;
}

static void node_unlink(struct tree *t, size_t c)
{
	struct tnode *n = &t->nodes[c];
	struct tnode *p;

	if (n->parent == NONE)
		return;
	p = &t->nodes[n->parent];
	if (n->prev != NONE)
		t->nodes[n->prev].next = n->next;
	else
		p->first = n->next;
	if (n->next != NONE)
		t->nodes[n->next].prev = n->prev;
	else
		p->last = n->prev;
	n->parent = n->prev = n->next = NONE;
}

/* c (a root) becomes p's last child. */
static void node_link(struct tree *t, size_t p, size_t c)
{
	struct tnode *n = &t->nodes[c];

	n->parent = p;
	n->prev = t->nodes[p].last;
	n->next = NONE;
	if (n->prev != NONE)
		t->nodes[n->prev].next = c;
	else
		t->nodes[p].first = c;
	t->nodes[p].last = c;
}

/* Would making c a child of p close a loop (c is p or above it)? A
 * parent with IMAP_MAX_THREAD_DEPTH ancestors counts as one, so that the
 * walk is bounded. */
static bool would_loop(const struct tree *t, size_t p, size_t c)
{
	size_t steps = 0;

	for (size_t x = p; x != NONE; x = t->nodes[x].parent)
		if (x == c || ++steps > IMAP_MAX_THREAD_DEPTH)
			return true;
	return false;
}

/* RFC 5256 section 3 step 1: a node per message (A), the References
 * chain linked where no link exists yet (B), the message under its last
 * reference (C). Links that would close a loop are not made. */
static void link_references(struct tree *t, struct idtab *ids, size_t n)
{
	for (size_t m = 0; m < n; m++) {
		const struct imap_thread_msg *msg = &t->msgs[m];
		size_t cur = NONE, prev = NONE;

		if (msg->message_id != NULL) {
			size_t *slot = idtab_slot(ids, msg->message_id);

			if (*slot == NONE)
				*slot = cur = node_new(t, m);
			else if (t->nodes[*slot].msg == NONE)
				t->nodes[cur = *slot].msg = m;
			/* else a duplicate Message-ID: a node of its own */
		}
		if (cur == NONE)
			cur = node_new(t, m);
		for (size_t r = 0; r < msg->ref_count; r++) {
			size_t *slot = idtab_slot(ids, msg->refs[r]);
			size_t ref;

			if (*slot == NONE)
				*slot = node_new(t, NONE);
			ref = *slot;
			if (prev != NONE && t->nodes[ref].parent == NONE &&
			    !would_loop(t, prev, ref))
				node_link(t, prev, ref);
			prev = ref;
		}
		node_unlink(t, cur);
		if (prev != NONE && !would_loop(t, prev, cur))
			node_link(t, prev, cur);
	}
}

/* Steps 2-4: the roots, and dummies pruned. Top down (breadth first): a
 * node's new parent is its parent when that is a message or a root
 * dummy, else the new parent of its (dummy, dropped) parent. Then a root
 * dummy left with one child gives it the root, and one with none goes. */
static void prune(struct tree *t)
{
	size_t *queue = xcalloc(t->count + 1, sizeof(*queue));
	size_t *newp = xcalloc(t->count + 1, sizeof(*newp));
	size_t *kids = xcalloc(t->count + 1, sizeof(*kids));
	size_t head = 0, tail = 0;

	for (size_t i = 0; i < t->count; i++)
		if (t->nodes[i].parent == NONE)
			queue[tail++] = i;
	while (head < tail) {
		size_t x = queue[head++], p = t->nodes[x].parent;

		if (p == NONE)
			newp[x] = NONE;
		else if (t->nodes[p].msg != NONE || t->nodes[p].parent == NONE)
			newp[x] = p;
		else
			newp[x] = newp[p];
		for (size_t c = t->nodes[x].first; c != NONE;
		     c = t->nodes[c].next)
			queue[tail++] = c;
	}
	for (size_t i = 0; i < t->count; i++) {
		t->nodes[i].first = t->nodes[i].last = NONE;
		t->nodes[i].prev = t->nodes[i].next = NONE;
		t->nodes[i].parent = NONE;
		t->nodes[i].deleted = t->nodes[i].msg == NONE;
	}
	/* the queue holds every node once, parents before children */
	for (size_t q = 0; q < tail; q++) {
		size_t x = queue[q];

		if (t->nodes[x].msg == NONE && newp[x] != NONE)
			continue; /* a dummy below the root: gone */
		if (newp[x] != NONE) {
			node_link(t, newp[x], x);
			kids[newp[x]]++;
		}
	}
	for (size_t i = 0; i < t->count; i++) {
		size_t only;

		if (t->nodes[i].msg != NONE || newp[i] != NONE)
			continue;
		if (kids[i] >= 2) {
			t->nodes[i].deleted = false;
			continue;
		}
		if (kids[i] == 1) {
			only = t->nodes[i].first;
			node_unlink(t, only);
		}
	}
	free(queue);
	free(newp);
	free(kids);
}

/* The message that stands for node: itself, or a dummy's first child. */
static size_t first_real(const struct tree *t, size_t node)
{
	if (t->nodes[node].msg == NONE && t->nodes[node].first != NONE)
		node = t->nodes[node].first;
	return node;
}

static struct sortkey node_key(const struct tree *t, size_t node)
{
	struct sortkey k;
	size_t real = first_real(t, node);
	size_t msg = t->nodes[real].msg;

	k.node = node;
	k.msg = msg == NONE ? SIZE_MAX : msg;
	k.sent = msg == NONE ? 0 : t->msgs[msg].sent;
	k.subject = msg == NONE ? "" : t->msgs[msg].subject;
	return k;
}

static int sortkey_cmp(const void *a, const void *b)
{
	const struct sortkey *x = a, *y = b;

	if (x->sent != y->sent)
		return x->sent < y->sent ? -1 : 1;
	return x->msg < y->msg ? -1 : x->msg > y->msg;
}

static int subject_cmp(const void *a, const void *b)
{
	const struct sortkey *x = a, *y = b;
	int c = strcmp(x->subject, y->subject);

	return c != 0 ? c : sortkey_cmp(a, b);
}

/* Step 6 for one node: its children by sent date. */
static void sort_children(struct tree *t, size_t parent)
{
	struct sortkey *keys;
	size_t n = 0;

	for (size_t c = t->nodes[parent].first; c != NONE; c = t->nodes[c].next)
		n++;
	if (n < 2)
		return;
	keys = xcalloc(n, sizeof(*keys));
	n = 0;
	for (size_t c = t->nodes[parent].first; c != NONE; c = t->nodes[c].next)
		keys[n++] = node_key(t, c);
	qsort(keys, n, sizeof(*keys), sortkey_cmp);
	for (size_t i = 0; i < n; i++)
		node_unlink(t, keys[i].node);
	for (size_t i = 0; i < n; i++)
		node_link(t, parent, keys[i].node);
	free(keys);
}

/* The live roots, sorted (their children sorted first, so that a
 * dummy's date is its earliest child's). */
static size_t *sorted_roots(struct tree *t, size_t *count_r)
{
	struct sortkey *keys = xcalloc(t->count + 1, sizeof(*keys));
	size_t *roots, n = 0;

	for (size_t i = 0; i < t->count; i++)
		if (!t->nodes[i].deleted)
			sort_children(t, i);
	for (size_t i = 0; i < t->count; i++)
		if (!t->nodes[i].deleted && t->nodes[i].parent == NONE)
			keys[n++] = node_key(t, i);
	qsort(keys, n, sizeof(*keys), sortkey_cmp);
	roots = xcalloc(n + 1, sizeof(*roots));
	for (size_t i = 0; i < n; i++)
		roots[i] = keys[i].node;
	free(keys);
	*count_r = n;
	return roots;
}

/* Step 5: roots with the same base subject gathered. */
static void merge_subjects(struct tree *t)
{
	struct idtab subjects;
	size_t count, *roots = sorted_roots(t, &count);

	idtab_init(&subjects, count);
	/* A-C: the table keeps a dummy over a message, and a message that
	 * is not a reply over one that is. */
	for (size_t i = 0; i < count; i++) {
		size_t r = roots[i], *slot;
		struct sortkey k = node_key(t, r);
		bool r_dummy = t->nodes[r].msg == NONE, t_dummy;

		if (k.msg == SIZE_MAX || k.subject[0] == '\0')
			continue;
		slot = idtab_slot(&subjects, k.subject);
		if (*slot == NONE) {
			*slot = r;
			continue;
		}
		t_dummy = t->nodes[*slot].msg == NONE;
		if ((r_dummy && !t_dummy) ||
		    (r_dummy == t_dummy &&
		     t->msgs[node_key(t, *slot).msg].reply &&
		     !t->msgs[k.msg].reply))
			*slot = r;
	}
	/* D: every other root joins its table entry */
	for (size_t i = 0; i < count; i++) {
		size_t r = roots[i], *slot, e;
		struct sortkey k = node_key(t, r);
		bool r_dummy = t->nodes[r].msg == NONE;

		/* r may have joined a new dummy as an earlier table entry */
		if (t->nodes[r].parent != NONE || t->nodes[r].deleted ||
		    k.msg == SIZE_MAX || k.subject[0] == '\0')
			continue;
		slot = idtab_slot(&subjects, k.subject);
		e = *slot;
		if (e == r)
			continue;
		if (t->nodes[e].msg == NONE && r_dummy) {
			while (t->nodes[r].first != NONE) {
				size_t c = t->nodes[r].first;

				node_unlink(t, c);
				node_link(t, e, c);
			}
			t->nodes[r].deleted = true;
		} else if (t->nodes[e].msg == NONE ||
			   (t->msgs[k.msg].reply &&
			    !t->msgs[t->nodes[e].msg].reply)) {
			node_link(t, e, r);
		} else {
			size_t d = node_new(t, NONE);

			node_link(t, d, e);
			node_link(t, d, r);
			*slot = d;
		}
	}
	idtab_free(&subjects);
	free(roots);
}

/* One thread: "(" ... ")" (imap_thread.h), with an explicit stack. */
static int write_thread(const struct tree *t, size_t root, size_t *stack,
			struct buf *out)
{
	size_t depth = 0;
	int rc = 0;

	/* stack[i]: a node whose children are being written; its next
	 * child to write is kept in the parallel half of the array */
	size_t *next = stack + t->count + 1;

	stack[depth] = root;
	rc |= buf_append_str(out, "(");
	if (t->nodes[root].msg != NONE) {
		rc |= buf_printf(out, "%u", t->msgs[t->nodes[root].msg].id);
		if (t->nodes[root].first != NONE)
			rc |= buf_append_str(out, " ");
	}
	next[depth] = t->nodes[root].first;
	for (;;) {
		size_t x = stack[depth], c = next[depth];
		bool branches;

		if (c == NONE) {
			/* x is done: a branch closes its parenthesis */
			if (depth == 0)
				break;
			depth--;
			if (t->nodes[stack[depth]].first !=
			    t->nodes[stack[depth]].last)
				rc |= buf_append_str(out, ")");
			continue;
		}
		next[depth] = t->nodes[c].next;
		branches = t->nodes[x].first != t->nodes[x].last ||
			   t->nodes[x].msg == NONE;
		if (branches)
			rc |= buf_append_str(out, "(");
		rc |= buf_printf(out, "%u", t->msgs[t->nodes[c].msg].id);
		if (t->nodes[c].first != NONE)
			rc |= buf_append_str(out, " ");
		stack[++depth] = c;
		next[depth] = t->nodes[c].first;
	}
	rc |= buf_append_str(out, ")");
	return rc < 0 ? -1 : 0;
}

int imap_thread_references(const struct imap_thread_msg *msgs, size_t n,
			   struct buf *out)
{
	struct tree t;
	struct idtab ids;
	size_t refs = 0, count, *roots, *stack;
	int rc = 0;

	memset(&t, 0, sizeof(t));
	t.msgs = msgs;
	for (size_t i = 0; i < n; i++)
		refs += msgs[i].ref_count;
	idtab_init(&ids, n + refs);
	link_references(&t, &ids, n);
	idtab_free(&ids);
	prune(&t);
	merge_subjects(&t);
	roots = sorted_roots(&t, &count);
	stack = xcalloc(2 * (t.count + 1), sizeof(*stack));
	for (size_t i = 0; i < count && rc == 0; i++)
		rc = write_thread(&t, roots[i], stack, out);
	free(stack);
	free(roots);
	free(t.nodes);
	return rc;
}

int imap_thread_orderedsubject(const struct imap_thread_msg *msgs, size_t n,
			       struct buf *out)
{
	struct sortkey *keys = xcalloc(n + 1, sizeof(*keys));
	struct sortkey *firsts = xcalloc(n + 1, sizeof(*firsts));
	size_t groups = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		keys[i].sent = msgs[i].sent;
		keys[i].msg = i;
		keys[i].node = i;
		keys[i].subject = msgs[i].subject;
	}
	qsort(keys, n, sizeof(*keys), subject_cmp);
	/* a group's first message is the thread; node: where it starts */
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(keys[i].subject, keys[i - 1].subject) == 0)
			continue;
		firsts[groups] = keys[i];
		firsts[groups++].node = i;
	}
	qsort(firsts, groups, sizeof(*firsts), sortkey_cmp);
	for (size_t g = 0; g < groups && rc == 0; g++) {
		size_t from = firsts[g].node, to = from + 1;

		while (to < n &&
		       strcmp(keys[to].subject, keys[from].subject) == 0)
			to++;
		rc |= buf_printf(out, "(%u", msgs[keys[from].msg].id);
		for (size_t i = from + 1; i < to; i++)
			rc |= to - from == 2
				  ? buf_printf(out, " %u", msgs[keys[i].msg].id)
				  : buf_printf(out, "%s(%u)",
					       i == from + 1 ? " " : "",
					       msgs[keys[i].msg].id);
		rc |= buf_append_str(out, ")");
	}
	free(keys);
	free(firsts);
	return rc < 0 ? -1 : 0;
}
