import time, ssl
from conftest import ALICE, ALICE_PW

def test_scratch(server):
    srv = server
    c = srv.connect()
    print(c.cmd("STLS"))
    c.starttls(srv.ctx())
    print(c.cmd("CAPA")); print(c.multi())
    print(c.cmd("QUIT"))
    print(srv.log()[-2000:])
