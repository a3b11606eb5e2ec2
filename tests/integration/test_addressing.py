"""Addressing (issue 9, part 1): postmaster@ and abuse@ of every local
domain (RFC 5321 section 4.5.1, RFC 2142), aliases from a virtual(5)
file (lists, domain aliases, catch-alls, loops), subaddresses
(RFC 5233), SIGHUP reload, postd -t and postctl alias. Mail is sent with
smtplib and read back over POP3."""

import os
import shutil
import subprocess

import pytest

from conftest import ALICE, DOMAIN, POSTD, _child_env, running_server
from pop3util import simple_msg, wire
from smtputil import SmtpConn, check_trace, pop3_fetch_all, smtp_client

SWAKS = shutil.which("swaks")
BOB = "bob@" + DOMAIN
CAROL = "carol@" + DOMAIN
SENDER = "sender@remote.example"
DOMAINS = "example.org example.net example.com"

ALIASES = """\
# the team: one list, continued on the next line
team@example.org   alice@example.org, bob@example.org
                   carol@example.org
# a list inside a list, and a duplicate
all@example.org    team@example.org alice@example.org
@example.net       @example.org
@example.com       carol@example.org
loop1@example.org  loop2@example.org
loop2@example.org  loop1@example.org
fwd@example.org    alice@example.org, someone@remote.example
"""


def write_aliases(srv, text):
    path = os.path.join(srv.base, "aliases")
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.fixture(scope="module")
def asrv(tls_files):
    """A daemon with three local domains, the aliases above, and the
    role addresses set."""
    with running_server(tls_files, overrides={"domains": DOMAINS},
                        start=False) as srv:
        srv.overrides["aliases_file"] = write_aliases(srv, ALIASES)
        srv.overrides["postmaster_address"] = BOB
        srv.overrides["abuse_address"] = CAROL
        srv.write_config()
        srv.start()
        yield srv


def clear(srv):
    for u in (ALICE, BOB, CAROL):
        srv.clear_mailbox(u)


def send(srv, rcpts, subject):
    """One transaction: every RCPT must get 250; returns the message."""
    msg = wire(simple_msg(subject, "body of %s\n" % subject))
    with smtp_client(srv) as c:
        c.ehlo()
        c.mail(SENDER)
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, "RCPT %s: %d %s" % (r, code, text)
        code, text = c.data(msg)
        assert code == 250, "DATA: %d %r" % (code, text)
    return msg


def rcpt_reply(srv, addr):
    with smtp_client(srv) as c:
        c.ehlo()
        c.mail(SENDER)
        return c.rcpt(addr)


def inbox(srv, user):
    """The messages of user over POP3, trace headers removed."""
    return [check_trace(m, SENDER, "ESMTP") for _, m in
            pop3_fetch_all(srv, user)]


def new_files(srv, user):
    d = os.path.join(srv.maildir(user), "new")
    return [os.path.join(d, n) for n in os.listdir(d)] \
        if os.path.isdir(d) else []


def test_postmaster_every_domain_any_case(asrv):
    """postmaster@ of each local domain, in mixed case, reaches
    postmaster_address; the bare <Postmaster> still works."""
    clear(asrv)
    rcpts = ["postmaster@example.org", "PostMaster@Example.NET",
             "POSTMASTER@EXAMPLE.COM"]
    msgs = []
    for i, r in enumerate(rcpts):
        msgs.append(send(asrv, [r], "pm%d" % i))
    with SmtpConn(asrv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<Postmaster>").startswith("250")
        assert c.cmd("QUIT").startswith("221")
    assert sorted(inbox(asrv, BOB)) == sorted(msgs)
    assert inbox(asrv, ALICE) == [] and inbox(asrv, CAROL) == []


def test_abuse_goes_to_abuse_address(asrv):
    clear(asrv)
    msg = send(asrv, ["Abuse@example.net"], "abuse")
    assert inbox(asrv, CAROL) == [msg]


def test_alias_to_three_users_one_reply_hard_links(asrv):
    """One RCPT, one 250, three deliveries that are hard links of one
    file, each readable over POP3; the expansion is logged."""
    clear(asrv)
    mark = asrv.log_mark()
    msg = wire(simple_msg("team", "to the team\n"))
    with SmtpConn(asrv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        # pipelined: RCPT and DATA; exactly one reply for the RCPT
        c.send("RCPT TO:<team@example.org>\r\nNOOP\r\n")
        assert c.reply_line().startswith("250 2.1.5")
        assert c.reply_line().startswith("250 2.0.0")
        assert c.cmd("DATA").startswith("354")
        c.send(msg + b".\r\n")
        assert c.reply_line().startswith("250 2.0.0")
        assert c.cmd("QUIT").startswith("221")
    stats = []
    for u in (ALICE, BOB, CAROL):
        files = new_files(asrv, u)
        assert len(files) == 1, (u, files)
        stats.append(os.stat(files[0]))
        assert inbox(asrv, u) == [msg]
    assert len({s.st_ino for s in stats}) == 1, "not hard links"
    assert all(s.st_nlink == 3 for s in stats)
    asrv.wait_log(r"rcpt <team@example\.org> expanded to "
                  r"<alice@example\.org>,<bob@example\.org>,"
                  r"<carol@example\.org>", since=mark)


@pytest.mark.skipif(not SWAKS, reason="swaks not installed (apt-get "
                    "install swaks)")
def test_swaks_pipelined_alias_and_postmaster(asrv):
    """swaks pipelines MAIL, both RCPTs and DATA: the alias and the
    postmaster address each get one reply, and every user one copy."""
    clear(asrv)
    msg = wire(simple_msg("swaks", "pipelined to the team\n"))
    path = os.path.join(asrv.base, "swaks.eml")
    with open(path, "wb") as f:
        f.write(msg[:-2])  # swaks adds the CRLF before its "."
    p = subprocess.run([SWAKS, "--server", "127.0.0.1", "--port",
                        str(asrv.smtp_port), "--from", SENDER, "--to",
                        "team@example.org,PostMaster@Example.COM",
                        "--pipeline", "--data", "@" + path,
                        "--timeout", "30"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out[-2000:]
    assert out.count("<** ") == 0, out[-2000:]
    for u in (ALICE, BOB, CAROL):
        assert inbox(asrv, u) == [msg], u


def test_nested_alias_duplicates_collapse(asrv):
    """all@ holds team@ and alice again; with team@ and bob@ in the same
    transaction every user gets exactly one copy."""
    clear(asrv)
    msg = send(asrv, ["all@example.org", "team@example.org", BOB], "all")
    for u in (ALICE, BOB, CAROL):
        assert inbox(asrv, u) == [msg], u


def test_domain_alias(asrv):
    clear(asrv)
    msg = send(asrv, ["Alice@Example.NET"], "domain alias")
    assert inbox(asrv, ALICE) == [msg]


def test_catch_all_takes_only_unknown_names(asrv):
    """@example.com catches every name there (none is a user); in
    example.org, which has no catch-all, an unknown name is refused."""
    clear(asrv)
    msg = send(asrv, ["nobody@example.com"], "catch-all")
    assert inbox(asrv, CAROL) == [msg]
    code, text = rcpt_reply(asrv, "nobody@example.org")
    assert code == 550 and text.startswith(b"5.1.1"), (code, text)


def test_subaddress(asrv):
    """RFC 5233: alice+news@ is alice's, and team+x@ is the team."""
    clear(asrv)
    msg = send(asrv, ["alice+news@example.org"], "subaddress")
    assert inbox(asrv, ALICE) == [msg]
    clear(asrv)
    msg = send(asrv, ["team+x@example.org"], "team subaddress")
    for u in (ALICE, BOB, CAROL):
        assert inbox(asrv, u) == [msg], u


def test_alias_loop_refused_at_rcpt(asrv):
    mark = asrv.log_mark()
    code, text = rcpt_reply(asrv, "loop1@example.org")
    assert code == 550 and text.startswith(b"5.4.6"), (code, text)
    asrv.wait_log(r"refused .*cause=alias loop at <loop1@example\.org>",
                  since=mark)
    assert asrv.alive()


def test_remote_target_accepted_without_auth(asrv):
    """An alias to another server is the admin's forward: taken from an
    unauthenticated client, logged with its expansion."""
    mark = asrv.log_mark()
    code, text = rcpt_reply(asrv, "fwd@example.org")
    assert code == 250, (code, text)
    asrv.wait_log(r"rcpt <fwd@example\.org> expanded to "
                  r"<alice@example\.org>,<someone@remote\.example>",
                  since=mark)
    # the client itself still may not relay (INV-R1)
    code, text = rcpt_reply(asrv, "someone@remote.example")
    assert code == 554, (code, text)


def test_postd_t_reports_loop(asrv):
    p = subprocess.run([POSTD, "-t", "-c", asrv.conf],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=_child_env(), timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 1, (p.returncode, err)
    assert "alias loop1@example.org: loop" in err, err
    assert "alias loop2@example.org: loop" in err, err
    # the good entries are not blamed
    assert "team@example.org" not in err, err


def test_sighup_reload_and_postctl_alias(asrv):
    """postctl alias add rewrites the file; after SIGHUP the new alias
    works; postctl alias del and another SIGHUP take it away."""
    clear(asrv)
    assert rcpt_reply(asrv, "sales@example.org")[0] == 550
    asrv.postctl("alias", "add", "Sales@example.org", ALICE, BOB)
    listed = asrv.postctl("alias", "list").stdout.decode()
    assert "sales@example.org\talice@example.org, bob@example.org" in \
        listed.splitlines(), listed
    assert "team@example.org\talice@example.org, bob@example.org, " \
        "carol@example.org" in listed.splitlines(), listed
    p = asrv.postctl("alias", "add", "sales@example.org", CAROL,
                     check=False)
    assert p.returncode != 0 and b"exists" in p.stderr, p.stderr
    with open(asrv.overrides["aliases_file"]) as f:
        text = f.read()
    assert text.startswith(ALIASES), "other lines were not kept"
    mark = asrv.log_mark()
    asrv.hup()
    asrv.wait_log(r"aliases file .* loaded: 8 aliases", since=mark,
                  timeout=15)
    asrv.wait_ready()
    msg = send(asrv, ["sales@example.org"], "sales")
    assert inbox(asrv, ALICE) == [msg] and inbox(asrv, BOB) == [msg]
    asrv.postctl("alias", "del", "sales@example.org")
    assert "sales@" not in asrv.postctl("alias", "list").stdout.decode()
    p = asrv.postctl("alias", "del", "sales@example.org", check=False)
    assert p.returncode == 67, (p.returncode, p.stderr)
    mark = asrv.log_mark()
    asrv.hup()
    asrv.wait_log(r"aliases file .* loaded: 7 aliases", since=mark,
                  timeout=15)
    asrv.wait_ready()
    assert rcpt_reply(asrv, "sales@example.org")[0] == 550


def test_postmaster_from_refused_client(make_server):
    """A client refused for relaying and past max_recipients still
    reaches postmaster@ (RFC 5321 section 4.5.1); without
    postmaster_address that is the first user of the users file."""
    srv = make_server(overrides={"max_recipients": "2"})
    for u in (ALICE, BOB, CAROL):
        srv.clear_mailbox(u)
    msg = wire(simple_msg("to postmaster", "from a refused client\n"))
    with smtp_client(srv) as c:
        c.ehlo()
        c.mail(SENDER)
        code, _ = c.rcpt("someone@remote.example")
        assert code == 554
        assert c.rcpt(BOB)[0] == 250
        assert c.rcpt(CAROL)[0] == 250
        code, text = c.rcpt(ALICE)
        assert code == 452, (code, text)
        code, text = c.rcpt("PostMaster@example.org")
        assert code == 250, (code, text)
        code, text = c.data(msg)
        assert code == 250, (code, text)
    for u in (ALICE, BOB, CAROL):
        assert [check_trace(m, SENDER, "ESMTP") for _, m in
                pop3_fetch_all(srv, u)] == [msg], u


def test_postd_t_warns_without_postmaster_address(make_server):
    srv = make_server(start=False)
    p = subprocess.run([POSTD, "-t", "-c", srv.conf],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=_child_env(), timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 0, err
    assert "postmaster_address is not set" in err, err
    assert ALICE in err, err


EXTENSION_ALIASES = """\
@example.net            @example.org
@example.com            @partner.example
alice+news@example.org  bob@example.org
fwd@example.org         alice@example.org, someone@remote.example
"""


@pytest.fixture
def extsrv(make_server):
    srv = make_server(overrides={"domains": DOMAINS}, start=False)
    srv.overrides["aliases_file"] = write_aliases(srv, EXTENSION_ALIASES)
    srv.write_config()
    srv.start()
    return srv


def test_domain_alias_keeps_the_subaddress(extsrv):
    """Postfix's propagate_unmatched_extensions: alice+news@example.net
    becomes alice+news@example.org, not alice@example.org, so the alias
    of that subaddress (to bob) applies; another subaddress, with no
    alias of its own, still reaches alice."""
    for u in (ALICE, BOB):
        extsrv.clear_mailbox(u)
    mark = extsrv.log_mark()
    msg = send(extsrv, ["alice+news@example.net"], "newsletter")
    assert inbox(extsrv, BOB) == [msg]
    assert inbox(extsrv, ALICE) == []
    extsrv.wait_log(r"rcpt <alice\+news@example\.net> expanded to "
                    r"<bob@example\.org> ", since=mark)
    msg = send(extsrv, ["alice+other@example.net"], "other")
    assert inbox(extsrv, ALICE) == [msg]
    extsrv.wait_log(r"rcpt <alice\+other@example\.net> expanded to "
                    r"<alice@example\.org> ", since=mark)


def test_subaddress_passed_on_to_forwarded_targets(extsrv):
    """The extension reaches a remote target, of a domain alias and of an
    exact alias alike (info+x@ -> bob+x@, as Postfix); a local user
    among the targets is still its inbox."""
    mark = extsrv.log_mark()
    code, text = rcpt_reply(extsrv, "carol+lists@example.com")
    assert code == 250, (code, text)
    extsrv.wait_log(r"rcpt <carol\+lists@example\.com> expanded to "
                    r"<carol\+lists@partner\.example> ", since=mark)
    code, text = rcpt_reply(extsrv, "fwd+x@example.org")
    assert code == 250, (code, text)
    extsrv.wait_log(r"rcpt <fwd\+x@example\.org> expanded to "
                    r"<alice@example\.org>,<someone\+x@remote\.example> ",
                    since=mark)
