/*
 * Integration: the lab fixture itself. A plain TCP socket (no kith code)
 * opens an XMPP stream to the lab's Prosody and expects the STARTTLS
 * offer; a second one opens a XEP-0114 stream on the component port and
 * expects a stream header with an id. If this fails, every other
 * integration test would fail for the same reason: look at the lab.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lab.h"

#define IO_TIMEOUT_MS 5000

static int connect_lab(int port)
{
  struct sockaddr_in sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  assert_true(fd >= 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  assert_int_equal(inet_pton(AF_INET, lab_get("XMPP_HOST"), &sa.sin_addr), 1);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    fprintf(stderr, "connect 127.0.0.1:%d: %s\n", port, strerror(errno));
    fail();
  }
  return fd;
}

static void send_all(int fd, const char *s)
{
  size_t len = strlen(s);

  while (len > 0) {
    ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
    assert_true(n > 0);
    s += n;
    len -= (size_t)n;
  }
}

static long now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Read into buf until `until` appears, the peer closes or time runs out.
 * Returns non-zero when `until` was seen. buf is always NUL-terminated. */
static int recv_until(int fd, char *buf, size_t size, const char *until)
{
  size_t used = 0;
  long deadline = now_ms() + IO_TIMEOUT_MS;

  buf[0] = '\0';
  while (!strstr(buf, until) && used + 1 < size) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    long left = deadline - now_ms();
    ssize_t n;

    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
      break;
    n = recv(fd, buf + used, size - 1 - used, 0);
    if (n <= 0)
      break;
    used += (size_t)n;
    buf[used] = '\0';
  }
  return strstr(buf, until) != NULL;
}

static void test_c2s_offers_starttls(void **state)
{
  char header[512], buf[8192];
  int fd;

  (void)state;
  snprintf(header, sizeof header,
           "<?xml version='1.0'?><stream:stream to='%s' version='1.0' "
           "xmlns='jabber:client' "
           "xmlns:stream='http://etherx.jabber.org/streams'>",
           lab_get("DOMAIN"));
  fd = connect_lab(lab_get_int("C2S_PORT"));
  send_all(fd, header);
  if (!recv_until(fd, buf, sizeof buf, "</stream:features>"))
    fprintf(stderr, "got: %s\n", buf);
  assert_non_null(strstr(buf, "</stream:features>"));
  assert_non_null(strstr(buf, "<starttls"));
  assert_non_null(strstr(buf, "urn:ietf:params:xml:ns:xmpp-tls"));
  /* c2s_require_encryption: nothing to authenticate with before TLS. */
  assert_null(strstr(buf, "<mechanisms"));
  send_all(fd, "</stream:stream>");
  close(fd);
}

static void test_component_port_answers(void **state)
{
  char header[512], buf[4096];
  int fd;

  (void)state;
  snprintf(header, sizeof header,
           "<?xml version='1.0'?><stream:stream "
           "xmlns='jabber:component:accept' "
           "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>",
           lab_get("COMPONENT_DOMAIN"));
  fd = connect_lab(lab_get_int("COMPONENT_PORT"));
  send_all(fd, header);
  if (!recv_until(fd, buf, sizeof buf, " id="))
    fprintf(stderr, "got: %s\n", buf);
  assert_non_null(strstr(buf, "jabber:component:accept"));
  assert_null(strstr(buf, "stream:error"));
  close(fd);
}

static void test_env_is_complete(void **state)
{
  static const char *const keys[] = {
      "LAB_DIR",          "XMPP_HOST",   "C2S_PORT",       "COMPONENT_PORT",
      "DOMAIN",           "CA_FILE",     "OTHER_CA_FILE",  "COMPONENT_DOMAIN",
      "COMPONENT_SECRET", "ALICE_JID",   "ALICE_PASSWORD", "BOB_JID",
      "BOB_PASSWORD",     "CAROL_JID",   "CAROL_PASSWORD", "DAVE_JID",
      "DAVE_PASSWORD",    "PROSODY_PID",
  };
  size_t i;

  (void)state;
  for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
    assert_true(lab_get(keys[i])[0] != '\0');
  assert_true(lab_get_int("C2S_PORT") != 5222);
  assert_string_equal(lab_get("ALICE_JID"), "alice@localhost");
  assert_null(lab_find("NO_SUCH_KEY"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_env_is_complete),
      cmocka_unit_test(test_c2s_offers_starttls),
      cmocka_unit_test(test_component_port_answers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
