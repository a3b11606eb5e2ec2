"""SORT (RFC 5256), SORT=DISPLAY (RFC 5957), ESORT and PARTIAL (RFC 5267)
and THREAD=ORDEREDSUBJECT / THREAD=REFERENCES (RFC 5256) against the
daemon, with imaplib's sort() and thread() and a raw connection for the
ESEARCH forms."""

import imaplib

from conftest import ALICE
from test_imap_basic import Raw, caps_of, fresh, login, select

BASE = 1767225600  # 2026-01-01 00:00:00 UTC


def append(c, headers, internal, body="body\r\n"):
    raw = "".join("%s: %s\r\n" % h for h in headers) + "\r\n" + body
    typ, data = c.append("INBOX", None, imaplib.Time2Internaldate(internal),
                         raw.encode())
    assert typ == "OK", data


def numbers(data):
    return [int(x) for x in data[0].split()]


def sort(c, keys, *search):
    typ, data = c.sort(keys, "UTF-8", *(search or ("ALL",)))
    assert typ == "OK", data
    return numbers(data)


def thread(c, algo, *search):
    typ, data = c.thread(algo, "UTF-8", *(search or ("ALL",)))
    assert typ == "OK", data
    return data[0].decode()


def test_capabilities_name_sort_and_thread(shared_server):
    srv = shared_server
    c = login(srv)
    typ, data = c.capability()
    caps = data[0].decode().split()
    for cap in ("SORT", "SORT=DISPLAY", "ESORT", "CONTEXT=SORT",
                "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"):
        assert cap in caps, caps
    # UPDATE on SORT is declined as RFC 5267 4.3.1 allows: the other
    # options are answered, then NO [NOUPDATE "tag"], then OK.
    c.select("INBOX")
    tag = c._new_tag()
    c.send(tag + b" SORT RETURN (UPDATE COUNT) (DATE) UTF-8 ALL\r\n")
    lines = [c.readline()]
    while lines[-1].startswith(b"* "):
        lines.append(c.readline())
    assert lines[0].startswith(b'* ESEARCH (TAG "%s") COUNT ' % tag), lines
    assert lines[1].startswith(b'* NO [NOUPDATE "%s"] ' % tag), lines
    assert lines[2].startswith(tag + b" OK"), lines
    c.logout()


def test_sort_keys_follow_rfc5256(shared_server):
    srv = shared_server
    fresh(srv)
    c = login(srv)
    # seq: subject, from, date header, internal date, body (size)
    append(c, [("Subject", "Re: banana"), ("From", "Zed <zed@x.org>"),
               ("Date", "Thu, 01 Jan 2026 05:00:00 +0200")], BASE + 50,
           "x" * 30)
    append(c, [("Subject", "=?utf-8?q?apple?="),
               ("From", "=?iso-8859-1?q?Anna?= <y@x.org>"),
               ("Date", "Thu, 01 Jan 2026 02:00:00 +0000")], BASE + 10,
           "x" * 10)
    append(c, [("Subject", "[list] Fwd: Apple (fwd)"),
               ("From", "b@x.org")], BASE + 3 * 3600, "x" * 20)
    append(c, [("Subject", "cherry"), ("From", "a@x.org"),
               ("Date", "garbage")], BASE + 1, "x" * 10)
    assert select(c) == 4
    # base subjects: BANANA, APPLE, APPLE, CHERRY; ties by sequence
    assert sort(c, "(SUBJECT)") == [2, 3, 1, 4]
    assert sort(c, "(REVERSE SUBJECT)") == [4, 1, 2, 3]
    # DATE: 03:00Z, 02:00Z, none -> internal 03:00Z, garbage -> internal
    assert sort(c, "(DATE)") == [4, 2, 1, 3]
    assert sort(c, "(ARRIVAL)") == [4, 2, 1, 3]
    # SIZE is RFC822.SIZE; equal sizes fall to the next key, then seq
    typ, data = c.fetch("1:4", "(RFC822.SIZE)")
    size = {i + 1: int(d.split()[-1].rstrip(b")")) for i, d in enumerate(data)}
    assert sort(c, "(SIZE)") == sorted(size, key=lambda q: (size[q], q))
    assert sort(c, "(REVERSE SIZE)") == \
        sorted(size, key=lambda q: (-size[q], q))
    assert sort(c, "(SIZE REVERSE ARRIVAL)") == \
        sorted(size, key=lambda q: (size[q], -(BASE + [50, 10, 3 * 3600, 1][q - 1])))
    # FROM is the addr-mailbox, DISPLAYFROM the decoded name or address
    assert sort(c, "(FROM)") == [4, 3, 2, 1]
    # ("A@X.ORG" < "ANNA": i;ascii-casemap compares octets, '@' < 'N')
    assert sort(c, "(DISPLAYFROM)") == [4, 2, 3, 1]
    assert sort(c, "(REVERSE DISPLAYFROM)") == [1, 3, 2, 4]
    # the search program narrows; UID SORT answers UIDs
    assert sort(c, "(SUBJECT)", "SUBJECT", "apple") == [2, 3]
    typ, data = c.uid("SORT", "(REVERSE ARRIVAL)", "UTF-8", "ALL")
    uids = numbers(data)
    typ, fdata = c.fetch("3", "(UID)")
    assert uids[0] == int(fdata[0].split()[-1].rstrip(b")")), (uids, fdata)
    c.logout()


def test_sort_refusals_and_esort(shared_server):
    srv = shared_server
    fresh(srv)
    c = login(srv)
    for i in range(5):
        append(c, [("Subject", "m%d" % i)], BASE + (5 - i) * 60)
    c.logout()
    r = Raw(srv.imap_port)
    _, tagged = r.cmd("a", "LOGIN %s %s" % (ALICE, srv.users[ALICE]))
    assert tagged.startswith("a OK"), tagged
    r.cmd("b", "SELECT INBOX")
    lines, tagged = r.cmd("c", "SORT RETURN (MIN MAX COUNT) (ARRIVAL) "
                               "US-ASCII ALL")
    assert tagged.startswith("c OK"), tagged
    assert lines == ['* ESEARCH (TAG "c") MIN 5 MAX 1 COUNT 5'], lines
    lines, tagged = r.cmd("d", "SORT RETURN () (ARRIVAL) UTF-8 2:4")
    assert lines == ['* ESEARCH (TAG "d") ALL 4,3,2'], lines
    lines, tagged = r.cmd("e", "SORT RETURN (PARTIAL 4:2) (REVERSE ARRIVAL) "
                               "UTF-8 ALL")
    assert lines == ['* ESEARCH (TAG "e") PARTIAL (2:4 2:4)'], lines
    lines, tagged = r.cmd("f", "SORT RETURN (PARTIAL 7:9) (ARRIVAL) UTF-8 "
                               "ALL")
    assert lines == ['* ESEARCH (TAG "f") PARTIAL (7:9 NIL)'], lines
    for bad in ("SORT RETURN (PARTIAL 1) (ARRIVAL) UTF-8 ALL",
                "SORT RETURN (PARTIAL 1:*) (ARRIVAL) UTF-8 ALL",
                "SORT RETURN (ALL PARTIAL 1:2) (ARRIVAL) UTF-8 ALL",
                "SORT (ARRIVAL REVERSE) UTF-8 ALL",
                "SORT () UTF-8 ALL",
                "SORT (NAME) UTF-8 ALL",
                "SORT (ARRIVAL) UTF-8",
                "THREAD FANCY UTF-8 ALL"):
        lines, tagged = r.cmd("g", bad)
        assert tagged.startswith("g BAD"), (bad, tagged)
    _, tagged = r.cmd("h", "SORT (ARRIVAL) KOI8-R ALL")
    assert tagged.startswith("h NO [BADCHARSET"), tagged
    r.cmd("z", "LOGOUT")
    r.close()


def test_thread_references_and_orderedsubject(shared_server):
    srv = shared_server
    fresh(srv)
    c = login(srv)
    # 1 <- 2 <- 4 by References, 3 answers 1 by In-Reply-To, 5 and 6
    # answer a message that is not here, 7 is alone, 8 and 9 reference
    # each other (a loop)
    specs = [
        [("Message-ID", "<1@t>"), ("Subject", "topic")],
        [("Message-ID", "<2@t>"), ("References", "<1@t>"),
         ("Subject", "Re: topic")],
        [("Message-ID", "<3@t>"), ("In-Reply-To", "<1@t>"),
         ("Subject", "Re: topic")],
        [("Message-ID", "<4@t>"), ("References", "<1@t> <2@t>"),
         ("Subject", "Re: topic")],
        [("Message-ID", "<5@t>"), ("References", "<gone@t>"),
         ("Subject", "other")],
        [("Message-ID", "<6@t>"), ("References", "<gone@t>"),
         ("Subject", "Re: other")],
        [("Message-ID", "<7@t>"), ("Subject", "alone")],
        [("Message-ID", "<8@t>"), ("References", "<9@t>"),
         ("Subject", "loop")],
        [("Message-ID", "<9@t>"), ("References", "<8@t>"),
         ("Subject", "loop b")],
    ]
    for i, h in enumerate(specs):
        append(c, h, BASE + i * 60)
    assert select(c) == 9
    assert thread(c, "REFERENCES") == \
        "(1 (2 4)(3))((5)(6))(7)(9 8)"
    # ORDEREDSUBJECT: by base subject, first message the parent
    assert thread(c, "ORDEREDSUBJECT") == \
        "(1 (2)(3)(4))(5 6)(7)(8)(9)"
    # UID THREAD names UIDs; a narrowed search threads what matched
    typ, data = c.uid("THREAD", "REFERENCES", "UTF-8", "SUBJECT", "other")
    assert typ == "OK", data
    typ, fdata = c.fetch("5:6", "(UID)")
    u = [int(x[x.index(b"UID ") + 4:].rstrip(b")")) for x in fdata]
    assert data[0].decode() == "((%d)(%d))" % (u[0], u[1]), (data, fdata)
    # an expunged parent leaves its children in a dummy (RFC 5256 3)
    c.store("1", "+FLAGS", "(\\Deleted)")
    c.expunge()
    assert thread(c, "REFERENCES") == "((1 3)(2))((4)(5))(6)(8 7)"
    c.logout()


def test_hostile_references_are_bounded(shared_server):
    srv = shared_server
    fresh(srv)
    c = login(srv)
    many = " ".join("<r%d@t>" % i for i in range(3000))
    append(c, [("Message-ID", "<a@t>"), ("References", many)], BASE)
    append(c, [("Message-ID", "<r2999@t>"), ("References", "<a@t>")],
           BASE + 60)
    # a long chain: each message answers the one before
    for i in range(40):
        h = [("Message-ID", "<c%d@t>" % i)]
        if i:
            h.append(("References", "<c%d@t>" % (i - 1)))
        append(c, h, BASE + 120 + i)
    assert select(c) == 42
    out = thread(c, "REFERENCES")
    # a and r2999 reference each other: one of the links is refused
    assert out.startswith("((1 2)") or out.startswith("(2 1)") or \
        out.startswith("(1 2)"), out[:200]
    assert " ".join(str(i) for i in range(3, 43)) in out, out[-300:]
    assert srv.alive()
    c.logout()
