#!/usr/bin/python3
"""Record what the lab's Prosody really sends, as transcripts.

    tests/lab/lab.sh start /tmp/lab
    /usr/bin/python3 tests/lab/capture_transcripts.py /tmp/lab/lab.env \
        tests/data/transcripts

Each transcript is a text file; see tests/data/transcripts/README.md for
the format. The client side here is a deliberately plain, byte-level XMPP
client (sockets, ssl, a small SCRAM) so that the files show exactly what
went over the wire, in the order it went.
"""

import base64
import hashlib
import hmac
import os
import re
import socket
import ssl
import sys
import time

TIMEOUT = 5.0


def load_env(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


class Transcript:
    """A connection that logs every chunk sent (C:) and received (S:)."""

    def __init__(self, title, who=None, lines=None):
        self.lines = lines if lines is not None else ["# " + title]
        self.sock = None
        self.c = "C: " if who is None else "C[%s]: " % who
        self.s = "S: " if who is None else "S[%s]: " % who

    def note(self, text):
        self.lines.append("# " + text)

    def connect(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)

    def send(self, data):
        self.lines.append(self.c + data)
        self.sock.sendall(data.encode("utf-8"))

    def recv_until(self, pattern, note_closed=True, timeout=TIMEOUT):
        """Read until the accumulated input matches pattern (a regex) or the
        peer closes; log each read as one S: line. Return the text."""
        got = ""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, got, re.S):
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise RuntimeError("timeout waiting for %r; got %r" % (pattern, got))
            if not chunk:
                if note_closed:
                    self.note("server closed the connection")
                break
            text = chunk.decode("utf-8")
            self.lines.append(self.s + text)
            got += text
        return got

    def drain(self, seconds=0.4):
        """Log whatever arrives within `seconds`; return it."""
        got = ""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                self.note("server closed the connection")
                break
            text = chunk.decode("utf-8")
            self.lines.append(self.s + text)
            got += text
        return got

    def starttls(self, cafile, server_hostname):
        ctx = ssl.create_default_context(cafile=cafile)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.note("TLS established: %s %s" % (self.sock.version(), self.sock.cipher()[0]))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.lines) + "\n")


def header(to):
    return ("<?xml version='1.0'?><stream:stream to='%s' version='1.0' "
            "xml:lang='en' xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams'>" % to)


FEATURES_END = r"</stream:features>"


def open_stream(t, to):
    t.send(header(to))
    return t.recv_until(FEATURES_END + "|</stream:stream>")


def do_starttls(t, env, to):
    t.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    t.recv_until(r"<proceed[^>]*/>")
    t.starttls(env["CA_FILE"], to)
    return open_stream(t, to)


def hi(hash_name, password, salt, iterations):
    return hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)


def scram(t, hash_name, mech, user, password, cb_name=None, gs2=None):
    """Run SCRAM over the transcript; return the server's last answer.
    gs2 overrides the GS2 header ("y,," = client could bind, server
    offered no -PLUS)."""
    cnonce = base64.b64encode(os.urandom(18)).decode()
    if gs2:
        cb_data = b""
    elif cb_name:
        gs2 = "p=%s,," % cb_name
        cb_data = t.sock.get_channel_binding(cb_name)
        t.note("channel binding %s = %s" % (cb_name, cb_data.hex()))
    else:
        gs2 = "n,,"
        cb_data = b""
    first_bare = "n=%s,r=%s" % (user, cnonce)
    t.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>"
           % (mech, base64.b64encode((gs2 + first_bare).encode()).decode()))
    reply = t.recv_until(r"</challenge>|<failure.*</failure>")
    m = re.search(r"<challenge[^>]*>([^<]*)</challenge>", reply)
    if not m:
        return reply
    server_first = base64.b64decode(m.group(1)).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hi(hash_name, password, base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored_key = hashlib.new(hash_name, client_key).digest()
    cbind = base64.b64encode(gs2.encode() + cb_data).decode()
    final_bare = "c=%s,r=%s" % (cbind, attrs["r"])
    auth_msg = ",".join([first_bare, server_first, final_bare]).encode()
    sig = hmac.new(stored_key, auth_msg, hash_name).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    final = final_bare + ",p=" + base64.b64encode(proof).decode()
    t.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>"
           % base64.b64encode(final.encode()).decode())
    return t.recv_until(r"</success>|<success[^>]*/>|</failure>")


def login(t, env, to, user, password, mech="SCRAM-SHA-1", hash_name="sha1",
          cb_name=None):
    t.connect(env["XMPP_HOST"], int(env["C2S_PORT"]))
    open_stream(t, to)
    do_starttls(t, env, to)
    reply = scram(t, hash_name, mech, user, password, cb_name)
    if "<success" not in reply:
        raise RuntimeError("login failed: " + reply)
    open_stream(t, to)


def end(t):
    t.send("</stream:stream>")
    try:
        t.recv_until("</stream:stream>")
    except (RuntimeError, OSError):
        pass
    t.close()


# ---- the scenarios -------------------------------------------------------

def c2s_login(env, out):
    t = Transcript("Prosody 0.12 c2s: STARTTLS, SCRAM-SHA-1, bind, roster get "
                   "(versioned), roster set + push, presence, close")
    login(t, env, "localhost", "alice", env["ALICE_PASSWORD"])
    t.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
           "<resource>kith</resource></bind></iq>")
    t.recv_until(r"</iq>")
    t.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster' ver=''/></iq>")
    t.recv_until(r"</iq>|<iq[^>]*/>")
    t.send("<iq type='set' id='roster2'><query xmlns='jabber:iq:roster'>"
           "<item jid='bob@localhost' name='Bob'><group>Friends</group></item>"
           "</query></iq>")
    t.recv_until(r"id='roster2'[^>]*/>|id='roster2'.*</iq>")
    t.send("<iq type='get' id='roster3'><query xmlns='jabber:iq:roster' ver='1'/></iq>")
    t.recv_until(r"id='roster3'[^>]*/>|id='roster3'.*</iq>")
    t.send("<presence/>")
    time.sleep(0.3)
    t.send("<iq type='set' id='roster4'><query xmlns='jabber:iq:roster'>"
           "<item jid='bob@localhost' subscription='remove'/></query></iq>")
    t.recv_until(r"id='roster4'[^>]*/>|id='roster4'.*</iq>")
    end(t)
    t.save(os.path.join(out, "prosody-c2s-login.txt"))


def c2s_features(env, out):
    t = Transcript("Prosody 0.12 c2s: stream features before and after STARTTLS "
                   "(host localhost, TLS 1.3)")
    t.connect(env["XMPP_HOST"], int(env["C2S_PORT"]))
    open_stream(t, "localhost")
    t.note("a premature <auth> before TLS (c2s_require_encryption = true)")
    t.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
           + base64.b64encode(b"\0alice\0alice-secret").decode() + "</auth>")
    t.recv_until(r"</failure>|</stream:stream>")
    t.close()
    t.note("second connection")
    t.connect(env["XMPP_HOST"], int(env["C2S_PORT"]))
    open_stream(t, "localhost")
    do_starttls(t, env, "localhost")
    end(t)
    t.save(os.path.join(out, "prosody-c2s-features.txt"))


def c2s_tls12_plus(env, out):
    t = Transcript("Prosody 0.12 c2s on a host capped at TLS 1.2: "
                   "SCRAM-SHA-1-PLUS with tls-unique")
    login(t, env, "tls12.localhost", "alice", env["TLS12_PASSWORD"],
          mech="SCRAM-SHA-1-PLUS", cb_name="tls-unique")
    end(t)
    t.save(os.path.join(out, "prosody-c2s-tls12-plus.txt"))


def c2s_sha256(env, out):
    t = Transcript("Prosody 0.12 c2s on a host with password_hash = SHA-256: "
                   "SCRAM-SHA-256")
    login(t, env, "sha256.localhost", "alice", env["SHA256_PASSWORD"],
          mech="SCRAM-SHA-256", hash_name="sha256")
    end(t)
    t.save(os.path.join(out, "prosody-c2s-sha256.txt"))


def c2s_errors(env, out):
    t = Transcript("Prosody 0.12 c2s errors: wrong password, unknown mechanism, "
                   "SCRAM-SHA-1-PLUS over TLS 1.3, unknown host")
    t.connect(env["XMPP_HOST"], int(env["C2S_PORT"]))
    open_stream(t, "localhost")
    do_starttls(t, env, "localhost")
    t.note("wrong password")
    scram(t, "sha1", "SCRAM-SHA-1", "alice", "wrong-password")
    t.note("unknown user")
    scram(t, "sha1", "SCRAM-SHA-1", "nobody", "x")
    t.note("a mechanism not offered")
    t.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NOPE'/>")
    t.recv_until(r"</failure>|</stream:stream>")
    t.note("PLUS over TLS 1.3 (not offered: tls-unique is undefined there)")
    t.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1-PLUS'>"
           + base64.b64encode(b"p=tls-exporter,,n=alice,r=abcdefgh").decode() + "</auth>")
    got = t.recv_until(r"</failure>|</challenge>|</stream:stream>")
    if "</challenge>" in got:
        t.note("the server went on anyway; abort")
        t.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        t.recv_until(r"</failure>|</stream:stream>")
    t.note("PLAIN with the wrong password")
    t.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
           + base64.b64encode(b"\0alice\0wrong").decode() + "</auth>")
    t.recv_until(r"</failure>|</stream:stream>")
    end(t)
    t.note("a new connection: stream to an unknown host")
    t.connect(env["XMPP_HOST"], int(env["C2S_PORT"]))
    t.send(header("nope.example"))
    t.recv_until(r"</stream:stream>")
    t.close()
    t.note("a new connection: no 'to' attribute")
    t.connect(env["XMPP_HOST"], int(env["C2S_PORT"]))
    t.send("<?xml version='1.0'?><stream:stream version='1.0' xmlns='jabber:client' "
           "xmlns:stream='http://etherx.jabber.org/streams'>")
    t.recv_until(r"</stream:stream>")
    t.close()
    t.save(os.path.join(out, "prosody-c2s-errors.txt"))


def c2s_direct_tls(env, out):
    t = Transcript("Prosody 0.12 c2s direct TLS (XEP-0368) port: features")
    raw = socket.create_connection((env["XMPP_HOST"], int(env["C2S_DIRECT_TLS_PORT"])),
                                   timeout=TIMEOUT)
    ctx = ssl.create_default_context(cafile=env["CA_FILE"])
    ctx.set_alpn_protocols(["xmpp-client"])
    t.sock = ctx.wrap_socket(raw, server_hostname="localhost")
    t.note("TLS established: %s %s, ALPN %s" % (t.sock.version(), t.sock.cipher()[0],
                                                 t.sock.selected_alpn_protocol()))
    open_stream(t, "localhost")
    end(t)
    t.save(os.path.join(out, "prosody-c2s-direct-tls.txt"))


def subscriptions(env, out):
    title = ("Prosody 0.12 subscriptions between two online clients (carol, dave): "
             "subscribe/subscribed, pre-approval, unsubscribed, unsubscribe, remove. "
             "C[x]/S[x] = what x's connection sent/received")
    carol = Transcript(title, "carol")
    dave = Transcript(title, "dave", lines=carol.lines)
    for t, name in ((carol, "carol"), (dave, "dave")):
        t.note("%s logs in (SCRAM exchange not shown in detail)" % name)
        login(t, env, "localhost", name, env[name.upper() + "_PASSWORD"])
        t.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               "<resource>r</resource></bind></iq>")
        t.recv_until(r"</iq>")
        t.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster' ver=''/></iq>")
        t.recv_until(r"id='roster'[^>]*/>|id='roster'.*</iq>")
        t.send("<presence><show>chat</show><priority>5</priority></presence>")
        t.drain()
    # Hide the login chatter: keep only the lines from here on.
    start = len(carol.lines)
    carol.lines[1:start] = ["# (both logged in, bound to resource 'r', "
                            "fetched empty rosters, sent available presence)"]

    carol.note("carol asks to see dave's presence")
    carol.send("<presence to='dave@localhost' type='subscribe'/>")
    carol.drain()
    dave.drain()
    dave.note("dave approves")
    dave.send("<presence to='carol@localhost' type='subscribed'/>")
    dave.drain()
    carol.drain()

    dave.note("dave pre-approves carol's future request (RFC 6121 3.4)")
    dave.send("<presence to='carol@localhost' type='subscribed'/>")
    dave.drain()
    carol.drain()
    carol.note("carol pre-approves dave before he asks")
    carol.send("<presence to='dave@localhost' type='subscribed'/>")
    carol.drain()
    dave.drain()
    dave.note("dave asks; the server approves at once from carol's pre-approval")
    dave.send("<presence to='carol@localhost' type='subscribe'/>")
    dave.drain()
    carol.drain()

    carol.note("carol cancels dave's subscription to her (unsubscribed)")
    carol.send("<presence to='dave@localhost' type='unsubscribed'/>")
    carol.drain()
    dave.drain()
    carol.note("carol unsubscribes from dave's presence (unsubscribe)")
    carol.send("<presence to='dave@localhost' type='unsubscribe'/>")
    carol.drain()
    dave.drain()

    carol.note("roster get with the last version carol saw")
    vers = re.findall(r"ver='(\d+)'", "".join(l for l in carol.lines if l.startswith("S[carol]")))
    carol.send("<iq type='get' id='roster2'><query xmlns='jabber:iq:roster' ver='%s'/></iq>"
               % (vers[-1] if vers else ""))
    carol.recv_until(r"id='roster2'[^>]*/>|id='roster2'.*</iq>")
    carol.note("both remove each other")
    carol.send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>"
               "<item jid='dave@localhost' subscription='remove'/></query></iq>")
    carol.drain()
    dave.drain()
    dave.send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>"
              "<item jid='carol@localhost' subscription='remove'/></query></iq>")
    dave.drain()
    carol.drain()
    end(carol)
    dave.drain(0.2)
    end(dave)
    carol.save(os.path.join(out, "prosody-subscriptions.txt"))


def c2s_gs2_y(env, out):
    t = Transcript("Prosody 0.12: SCRAM-SHA-1 with GS2 flag 'y' (client supports "
                   "channel binding, thinks the server does not)")
    t.note("host localhost, TLS 1.3: no binding available, so 'y' is accepted")
    t.connect(env["XMPP_HOST"], int(env["C2S_PORT"]))
    open_stream(t, "localhost")
    do_starttls(t, env, "localhost")
    scram(t, "sha1", "SCRAM-SHA-1", "alice", env["ALICE_PASSWORD"], gs2="y,,")
    t.close()
    t.note("host tls12.localhost, TLS 1.2: the server offered -PLUS, so 'y' "
           "means a downgrade and is refused")
    t.connect(env["XMPP_HOST"], int(env["C2S_PORT"]))
    open_stream(t, "tls12.localhost")
    do_starttls(t, env, "tls12.localhost")
    scram(t, "sha1", "SCRAM-SHA-1", "alice", env["TLS12_PASSWORD"], gs2="y,,")
    end(t)
    t.save(os.path.join(out, "prosody-c2s-gs2-y.txt"))


def component_header(domain):
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>" % domain)


def handshake_of(stream_id, secret):
    return hashlib.sha1((stream_id + secret).encode()).hexdigest()


def component(env, out):
    t = Transcript("Prosody 0.12 XEP-0114 component: good handshake, a stanza, close; "
                   "wrong secret; unknown domain; second connection for a bound domain")
    port = int(env["COMPONENT_PORT"])
    dom, secret = env["COMPONENT_DOMAIN"], env["COMPONENT_SECRET"]
    t.note("good secret (component_secret = %s)" % secret)
    t.connect(env["XMPP_HOST"], port)
    t.send(component_header(dom))
    got = t.recv_until(r"<stream:stream[^>]*>")
    sid = re.search(r"\bid=['\"]([^'\"]+)", got).group(1)
    t.send("<handshake>%s</handshake>" % handshake_of(sid, secret))
    t.recv_until(r"<handshake\s*/>|</handshake>|</stream:stream>")
    t.send("<presence from='bot@bot.localhost' to='alice@localhost' type='probe'/>")
    t.send("<iq type='get' id='disco1' from='bot@bot.localhost' to='localhost'>"
           "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    t.recv_until(r"</iq>")
    t.note("a second connection for the same domain while the first is bound")
    t2 = Transcript("")
    t2.lines = t.lines
    t2.connect(env["XMPP_HOST"], port)
    t2.send(component_header(dom))
    got = t2.recv_until(r"<stream:stream[^>]*>")
    sid2 = re.search(r"\bid=['\"]([^'\"]+)", got).group(1)
    t2.send("<handshake>%s</handshake>" % handshake_of(sid2, secret))
    t2.recv_until(r"<handshake\s*/>|</handshake>|</stream:stream>")
    t.note("(first connection)")
    try:
        t.recv_until(r"</stream:stream>", timeout=0.5)
    except (RuntimeError, OSError):
        t.note("first connection: nothing (it stays bound: component_conflict_resolve = kick_new)")
    t2.close()
    end(t)

    t.note("a new connection: wrong secret")
    t.connect(env["XMPP_HOST"], port)
    t.send(component_header(dom))
    got = t.recv_until(r"<stream:stream[^>]*>")
    sid = re.search(r"\bid=['\"]([^'\"]+)", got).group(1)
    t.send("<handshake>%s</handshake>" % handshake_of(sid, "wrong-secret"))
    t.recv_until(r"</stream:stream>")
    t.close()

    t.note("a new connection: a domain that is not a component")
    t.connect(env["XMPP_HOST"], port)
    t.send(component_header("nope.localhost"))
    t.recv_until(r"</stream:stream>")
    t.close()

    t.note("a new connection: the user host 'localhost' on the component port")
    t.connect(env["XMPP_HOST"], port)
    t.send(component_header("localhost"))
    t.recv_until(r"</stream:stream>")
    t.close()
    t.save(os.path.join(out, "prosody-component.txt"))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    env = load_env(sys.argv[1])
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for scenario in (c2s_features, c2s_login, c2s_errors, c2s_tls12_plus,
                     c2s_sha256, c2s_direct_tls, component, subscriptions, c2s_gs2_y):
        scenario(env, out)


if __name__ == "__main__":
    main()
