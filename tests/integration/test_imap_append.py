"""APPEND's extensions: MULTIAPPEND (RFC 3502: several messages, all or
none), CATENATE (RFC 4469: TEXT and URL parts, URLs only into the user's
own mailboxes, INV-U1), literal8 (RFC 3516) and [TOOBIG] (RFC 7889), over
a raw socket since imaplib cannot send any of them."""

import base64
import re

from conftest import ALICE, ALICE_PW
from test_imap_basic import Raw, fresh, message

BOB = "bob@example.org"


def session(srv, user=ALICE, pw=ALICE_PW):
    r = Raw(srv.imap_port)
    _, tagged = r.cmd("l", "LOGIN %s %s" % (user, pw))
    assert tagged.startswith("l OK"), tagged
    return r


def messages(r, box="INBOX"):
    lines, tagged = r.cmd("s", "STATUS %s (MESSAGES)" % box)
    assert tagged.startswith("s OK"), tagged
    return int(re.search(r"MESSAGES (\d+)", lines[0]).group(1))


def send_literal(r, head, data, binary=False):
    """head ends with the announcement ("{N}"): waits for "+", sends data.
    Returns the line the server sent instead of "+", or None."""
    r.send(head + "\r\n")
    ln = r.line()
    if not ln.startswith("+"):
        return ln
    r.send(data)
    return None


def append_one(r, box, data):
    assert send_literal(r, "a APPEND %s {%d}" % (box, len(data)), data) \
        is None
    r.send("\r\n")
    _, tagged = r.until("a")
    assert tagged.startswith("a OK"), tagged
    return re.search(r"APPENDUID (\d+) (\d+)", tagged).groups()


def fetch_literal(r, text):
    """The literal of the one-item FETCH response (bytes)."""
    r.send("f %s\r\n" % text)
    first = r.line()
    m = re.search(r"~?\{(\d+)\}$", first)
    assert m, first
    n = int(m.group(1))
    while len(r.buf) < n:
        r.buf += r.sock.recv(65536)
    data, r.buf = r.buf[:n], r.buf[n:]
    _, tagged = r.until("f")
    assert tagged.startswith("f OK"), tagged
    return data


def test_multiappend_stores_all_or_none(make_server):
    srv = make_server(overrides={"max_message_size": "2000"})
    r = session(srv)
    assert "MULTIAPPEND" in r.cmd("c", "CAPABILITY")[0][0]
    one, two = message("first"), message("second")
    # Two messages, one command: both stored, one APPENDUID with both UIDs.
    assert send_literal(r, "a APPEND INBOX (\\Seen) {%d}" % len(one),
                        one) is None
    assert send_literal(r, " {%d}" % len(two), two) is None
    r.send("\r\n")
    _, tagged = r.until("a")
    m = re.match(r"a OK \[APPENDUID \d+ (\d+):(\d+)\]", tagged)
    assert m, tagged
    assert int(m.group(2)) == int(m.group(1)) + 1
    assert messages(r) == 2
    # A second message over the limit: the first is not stored either.
    assert send_literal(r, "b APPEND INBOX {%d}" % len(one), one) is None
    refusal = send_literal(r, " {5000}", b"x" * 5000)
    assert refusal is not None and refusal.startswith("b NO [TOOBIG]"), \
        refusal
    assert messages(r) == 2
    # A syntax error after the first message: none stored, and the
    # session goes on.
    assert send_literal(r, "d APPEND INBOX {%d}" % len(one), one) is None
    r.send(" junk\r\n")
    _, tagged = r.until("d")
    assert tagged.startswith("d BAD"), tagged
    assert messages(r) == 2
    r.close()


def test_catenate_text_and_url_parts(shared_server):
    srv = shared_server
    fresh(srv)
    r = session(srv)
    assert "CATENATE" in r.cmd("c", "CAPABILITY")[0][0]
    src = b"From: a@example.org\r\nSubject: src\r\n\r\nOriginal body.\r\n"
    uidv, uid = append_one(r, "INBOX", src)
    head = b"From: b@example.org\r\nSubject: forwarded\r\n\r\n"
    tail = b"-- \r\nsig\r\n"
    # TEXT, a URL into INBOX (absolute form), TEXT.
    assert send_literal(r, "a APPEND INBOX CATENATE (TEXT {%d}"
                        % len(head), head) is None
    assert send_literal(r, ' URL "/INBOX;UIDVALIDITY=%s/;UID=%s/;SECTION=TEXT"'
                        ' TEXT {%d}' % (uidv, uid, len(tail)), tail) is None
    r.send(")\r\n")
    _, tagged = r.until("a")
    assert tagged.startswith("a OK [APPENDUID"), tagged
    new_uid = re.search(r"APPENDUID \d+ (\d+)", tagged).group(1)
    _, tagged = r.cmd("s", "SELECT INBOX")
    assert tagged.startswith("s OK"), tagged
    got = fetch_literal(r, "UID FETCH %s BODY.PEEK[]" % new_uid)
    assert got == head + b"Original body.\r\n" + tail
    # A URL relative to the selected mailbox, and URLs only (no literal).
    lines, tagged = r.cmd("b", 'APPEND INBOX CATENATE (URL ";UID=%s/;SECTION=HEADER"'
                          ' URL ";UID=%s/;SECTION=1")' % (uid, uid))
    assert tagged.startswith("b OK [APPENDUID"), tagged
    copy_uid = re.search(r"APPENDUID \d+ (\d+)", tagged).group(1)
    assert fetch_literal(r, "UID FETCH %s BODY.PEEK[]" % copy_uid) == src
    r.close()


def test_catenate_url_outside_own_mailboxes_is_badurl(shared_server):
    srv = shared_server
    fresh(srv)
    fresh(srv, BOB)
    srv.deliver(BOB, message("for bob only"))
    r = session(srv)
    before = messages(r)
    for url in ["/../bob@example.org/;UID=1",
                "/%2E%2E/%2E%2E/example.org/bob/;UID=1",
                "imap://bob@example.org@127.0.0.1/INBOX/;UID=1",
                "//bob@example.org@127.0.0.1/INBOX/;UID=1",
                "/INBOX/;UID=1/;URLAUTH=anonymous",
                "/INBOX/;UID=1"]:  # alice's INBOX is empty
        lines, tagged = r.cmd("u", 'APPEND INBOX CATENATE (URL "%s")' % url)
        assert tagged.startswith("u NO [BADURL "), (url, tagged)
    # After a bad URL the rest of the command is read and dropped.
    text = b"Subject: x\r\n\r\nx\r\n"
    r.send('v APPEND INBOX CATENATE (URL "/../bob@example.org/;UID=1" '
           'TEXT {%d+}\r\n' % len(text))
    r.send(text + b")\r\n")
    _, tagged = r.until("v")
    assert tagged.startswith("v NO [BADURL "), tagged
    assert messages(r) == before
    _, tagged = r.cmd("n", "NOOP")
    assert tagged.startswith("n OK"), tagged
    r.close()
    # bob's message is still his alone and unchanged.
    b = session(srv, BOB, srv.users[BOB])
    assert messages(b) == 1
    b.close()


def test_literal8_append_keeps_nul_bytes(shared_server):
    srv = shared_server
    fresh(srv)
    r = session(srv)
    # NUL, 8-bit, a bare LF and a bare CR: none survives a file of lines.
    body = b"\x00\x01bin\x00ary\xff\nbare\rcr\r\n"
    msg = (b"From: a@example.org\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n" + body)
    assert send_literal(r, "a APPEND INBOX ~{%d}" % len(msg), msg) is None
    r.send("\r\n")
    _, tagged = r.until("a")
    assert tagged.startswith("a OK"), tagged
    _, tagged = r.cmd("s", "SELECT INBOX")
    assert tagged.startswith("s OK"), tagged
    assert fetch_literal(r, "FETCH 1 BINARY.PEEK[1]") == body
    # Stored re-encoded: BODY[1] is base64 text, not the raw octets.
    stored = fetch_literal(r, "FETCH 1 BODY.PEEK[1]")
    assert b"\x00" not in stored
    assert base64.b64decode(stored) == body
    lines, tagged = r.cmd("z", "FETCH 1 BINARY.SIZE[1]")
    assert "BINARY.SIZE[1] %d" % len(body) in lines[0], lines
    r.close()
