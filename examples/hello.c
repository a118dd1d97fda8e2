/*
 * hello: log in, say who we are, ping the server, log out.
 *
 *   KITH_PASSWORD=secret ./hello alice@example.org [HOST PORT [CA_FILE]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <kith/kith.h>

static void on_pong(kith_conn_t *conn, kith_status_t status,
                    const kith_stanza_t *reply, void *ud)
{
  (void)reply;
  (void)ud;
  printf("ping: %s\n", kith_strerror(status));
  kith_conn_disconnect(conn); /* sends </stream:stream>, waits for the peer */
}

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  kith_stanza_t *iq = NULL;

  (void)ud;
  if (ev->type == KITH_EVENT_DISCONNECTED) {
    printf("disconnected: %s\n", ev->text);
    return;
  }
  printf("session started as %s\n", ev->jid);
  kith_stanza_new(kith_conn_ctx(conn), "iq", NULL, &iq);
  kith_stanza_set_attr(iq, "type", "get");
  kith_stanza_add_element(iq, "ping", KITH_NS_PING, NULL);
  if (kith_conn_send_iq(conn, iq, 0, on_pong, NULL) != KITH_OK)
    kith_conn_disconnect(conn);
  kith_stanza_free(iq); /* sending serialized it; we still own it */
}

int main(int argc, char **argv)
{
  kith_conn_t *conn = NULL;
  kith_status_t rc;

  if (argc < 2 || getenv("KITH_PASSWORD") == NULL) {
    fprintf(stderr, "usage: KITH_PASSWORD=... %s JID [HOST PORT [CA]]\n",
            argv[0]);
    return 2;
  }
  kith_conn_new(NULL, &conn);
  kith_conn_set_jid(conn, argv[1]);
  kith_conn_set_password(conn, getenv("KITH_PASSWORD"));
  if (argc >= 4)
    kith_conn_set_server(conn, argv[2], (unsigned)atoi(argv[3]));
  if (argc >= 5)
    kith_conn_set_ca_file(conn, argv[4]);
  kith_conn_on(conn, KITH_EVENT_SESSION_START, on_event, NULL);
  kith_conn_on(conn, KITH_EVENT_DISCONNECTED, on_event, NULL);
  rc = kith_conn_connect(conn);
  if (rc == KITH_OK)
    rc = kith_run(conn); /* until disconnected; KITH_OK if we asked */
  else
    fprintf(stderr, "connect: %s\n", kith_conn_error_text(conn));
  kith_conn_free(conn);
  return rc == KITH_OK ? 0 : 1;
}
