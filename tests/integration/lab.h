/*
 * Integration-test helper: the lab's facts, read from $KITH_LAB_ENV.
 *
 * tests/lab/lab.sh start DIR writes DIR/lab.env (KEY=VALUE lines: ports,
 * domains, accounts, CA files); ctest passes its path in KITH_LAB_ENV.
 * The file is read once, on the first call. A missing variable, file or
 * key aborts the test with a message saying which, since no integration
 * test can do anything useful without them.
 *
 * Keys (tests/lab/lab.sh start):
 *   LAB_DIR, XMPP_HOST (127.0.0.1), DOMAIN (localhost), CA_FILE (the CA
 *   that signed the server certificate), OTHER_CA_FILE (an unrelated CA),
 *   C2S_PORT (STARTTLS), C2S_DIRECT_TLS_PORT (XEP-0368), COMPONENT_PORT,
 *   COMPONENT_DOMAIN / COMPONENT_SECRET (bot.localhost),
 *   GW_COMPONENT_DOMAIN / GW_COMPONENT_SECRET (gw.localhost),
 *   {ALICE,BOB,CAROL,DAVE}_{JID,PASSWORD} (NAME@localhost, NAME-secret),
 *   SHA256_{DOMAIN,JID,PASSWORD} (a host offering SCRAM-SHA-256 only),
 *   TLS12_{DOMAIN,JID,PASSWORD} (a host capped at TLS 1.2, which offers
 *   SCRAM-SHA-1-PLUS with tls-unique), PROSODY_LOG, PROSODY_PID.
 * After lab.sh start-redis: REDIS_HOST, REDIS_PORT, REDIS_PID.
 */
#ifndef KITH_TESTS_LAB_H
#define KITH_TESTS_LAB_H

/* The value of `key` (e.g. "C2S_PORT", "ALICE_JID"); never NULL. The
 * string lives until the process exits. Aborts when the key is missing. */
const char *lab_get(const char *key);

/* Like lab_get(), or NULL when the key is missing (optional entries such
 * as REDIS_PORT). */
const char *lab_find(const char *key);

/* lab_get() as an int; aborts unless the whole value is a decimal number. */
int lab_get_int(const char *key);

#endif /* KITH_TESTS_LAB_H */
