/*
 * Unit tests: the RFC 6121 subscription table (src/roster/subscription.c).
 *
 * The expected values below are typed from RFC 6121 itself: the tables of
 * Appendix A.2 (outbound) and A.3 (inbound), with the routing of outbound
 * stanzas taken from sections 3.1.2, 3.1.5, 3.2.2 and 3.3.2, and
 * pre-approval from section 3.4. They are deliberately independent of the
 * implementation's array: state names are spelled as in A.1 and mapped to
 * flags here, so a typo in either place shows up as a failure.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kith/roster.h"
#include "roster/subscription.h"

#define FROM KITH_ROSTER_FROM
#define TO KITH_ROSTER_TO
#define PIN KITH_ROSTER_PENDING_IN
#define POUT KITH_ROSTER_PENDING_OUT
#define APPR KITH_ROSTER_APPROVED

/* RFC 6121 A.1, name by name. */
static const struct {
  const char *name;
  unsigned flags;
} rfc_states[9] = {
    {"None", 0},
    {"None + Pending Out", POUT},
    {"None + Pending In", PIN},
    {"None + Pending Out+In", POUT | PIN},
    {"To", TO},
    {"To + Pending In", TO | PIN},
    {"From", FROM},
    {"From + Pending Out", FROM | POUT},
    {"Both", FROM | TO},
};

static unsigned flags_of(const char *name)
{
  size_t i;

  for (i = 0; i < 9; i++)
    if (strcmp(rfc_states[i].name, name) == 0)
      return rfc_states[i].flags;
  fail_msg("unknown state name '%s'", name);
  return 0;
}

/*
 * One row of an RFC table: the existing state, whether the stanza is
 * routed (outbound) or delivered (inbound), the new state ("=" for "no
 * state change"), and notes: 'R' the server auto-replies "subscribed"
 * (3.1.3), 'A' the row is a pre-approval (3.4, footnote of A.2.3).
 */
typedef struct row {
  const char *state;
  int deliver;
  const char *next;
  const char *notes;
} row_t;

/* A.2.1 Outbound "subscribe"; routed in every state (3.1.2). */
static const row_t out_subscribe[9] = {
    {"None", 1, "None + Pending Out", ""},
    {"None + Pending Out", 1, "=", ""},
    {"None + Pending In", 1, "None + Pending Out+In", ""},
    {"None + Pending Out+In", 1, "=", ""},
    {"To", 1, "=", ""},
    {"To + Pending In", 1, "=", ""},
    {"From", 1, "From + Pending Out", ""},
    {"From + Pending Out", 1, "=", ""},
    {"Both", 1, "=", ""},
};

/* A.2.2 Outbound "unsubscribe"; routed in every state (3.3.2). */
static const row_t out_unsubscribe[9] = {
    {"None", 1, "=", ""},
    {"None + Pending Out", 1, "None", ""},
    {"None + Pending In", 1, "=", ""},
    {"None + Pending Out+In", 1, "None + Pending In", ""},
    {"To", 1, "None", ""},
    {"To + Pending In", 1, "None + Pending In", ""},
    {"From", 1, "=", ""},
    {"From + Pending Out", 1, "From", ""},
    {"Both", 1, "From", ""},
};

/* A.2.3 Outbound "subscribed" (3.1.5; pre-approval 3.4). */
static const row_t out_subscribed[9] = {
    {"None", 0, "=", "A"},
    {"None + Pending Out", 0, "=", "A"},
    {"None + Pending In", 1, "From", ""},
    {"None + Pending Out+In", 1, "From + Pending Out", ""},
    {"To", 0, "=", "A"},
    {"To + Pending In", 1, "Both", ""},
    {"From", 0, "=", ""},
    {"From + Pending Out", 0, "=", ""},
    {"Both", 0, "=", ""},
};

/* A.2.4 Outbound "unsubscribed" (3.2.2). */
static const row_t out_unsubscribed[9] = {
    {"None", 0, "=", ""},
    {"None + Pending Out", 0, "=", ""},
    {"None + Pending In", 1, "None", ""},
    {"None + Pending Out+In", 1, "None + Pending Out", ""},
    {"To", 0, "=", ""},
    {"To + Pending In", 1, "To", ""},
    {"From", 1, "None", ""},
    {"From + Pending Out", 1, "None + Pending Out", ""},
    {"Both", 1, "To", ""},
};

/* A.3.1 Inbound "subscribe". */
static const row_t in_subscribe[9] = {
    {"None", 1, "None + Pending In", ""},
    {"None + Pending Out", 1, "None + Pending Out+In", ""},
    {"None + Pending In", 0, "=", ""},
    {"None + Pending Out+In", 0, "=", ""},
    {"To", 1, "To + Pending In", ""},
    {"To + Pending In", 0, "=", ""},
    {"From", 0, "=", "R"},
    {"From + Pending Out", 0, "=", "R"},
    {"Both", 0, "=", "R"},
};

/* A.3.2 Inbound "unsubscribe". "U": footnote [1] of the table, the server
 * SHOULD auto-reply with 'unsubscribed'. */
static const row_t in_unsubscribe[9] = {
    {"None", 0, "=", ""},
    {"None + Pending Out", 0, "=", ""},
    {"None + Pending In", 1, "None", "U"},
    {"None + Pending Out+In", 1, "None + Pending Out", "U"},
    {"To", 0, "=", ""},
    {"To + Pending In", 1, "To", "U"},
    {"From", 1, "None", "U"},
    {"From + Pending Out", 1, "None + Pending Out", "U"},
    {"Both", 1, "To", "U"},
};

/* A.3.3 Inbound "subscribed". */
static const row_t in_subscribed[9] = {
    {"None", 0, "=", ""},
    {"None + Pending Out", 1, "To", ""},
    {"None + Pending In", 0, "=", ""},
    {"None + Pending Out+In", 1, "To + Pending In", ""},
    {"To", 0, "=", ""},
    {"To + Pending In", 0, "=", ""},
    {"From", 0, "=", ""},
    {"From + Pending Out", 1, "Both", ""},
    {"Both", 0, "=", ""},
};

/* A.3.4 Inbound "unsubscribed". */
static const row_t in_unsubscribed[9] = {
    {"None", 0, "=", ""},
    {"None + Pending Out", 1, "None", ""},
    {"None + Pending In", 0, "=", ""},
    {"None + Pending Out+In", 1, "None + Pending In", ""},
    {"To", 1, "None", ""},
    {"To + Pending In", 1, "None + Pending In", ""},
    {"From", 0, "=", ""},
    {"From + Pending Out", 1, "From", ""},
    {"Both", 1, "From", ""},
};

static const struct {
  kith__sub_dir_t dir;
  kith__ptype_t type;
  const row_t *rows;
  const char *title;
} rfc_tables[8] = {
    {KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBE, out_subscribe, "A.2.1"},
    {KITH__SUB_OUTBOUND, KITH__PT_UNSUBSCRIBE, out_unsubscribe, "A.2.2"},
    {KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBED, out_subscribed, "A.2.3"},
    {KITH__SUB_OUTBOUND, KITH__PT_UNSUBSCRIBED, out_unsubscribed, "A.2.4"},
    {KITH__SUB_INBOUND, KITH__PT_SUBSCRIBE, in_subscribe, "A.3.1"},
    {KITH__SUB_INBOUND, KITH__PT_UNSUBSCRIBE, in_unsubscribe, "A.3.2"},
    {KITH__SUB_INBOUND, KITH__PT_SUBSCRIBED, in_subscribed, "A.3.3"},
    {KITH__SUB_INBOUND, KITH__PT_UNSUBSCRIBED, in_unsubscribed, "A.3.4"},
};

/* What a roster item shows (RFC 6121 2.1.2): subscription, ask, approved. */
static unsigned visible(unsigned flags)
{
  return flags & (FROM | TO | POUT | APPR);
}

/* The actions the RFC text implies for a transition. */
static unsigned expected_actions(unsigned old, unsigned now, const char *notes)
{
  unsigned a = 0;

  if (strchr(notes, 'R'))
    a |= KITH__SUB_A_REPLY_SUBSCRIBED | KITH__SUB_A_SEND_PRESENCE;
  if (strchr(notes, 'A'))
    a |= KITH__SUB_A_PREAPPROVE;
  if (strchr(notes, 'U')) /* Table 7 [1]: SHOULD auto-reply 'unsubscribed' */
    a |= KITH__SUB_A_REPLY_UNSUBSCRIBED;
  if (!(old & FROM) && (now & FROM)) /* 3.1.5: presence to a new subscriber */
    a |= KITH__SUB_A_SEND_PRESENCE;
  if ((old & FROM) && !(now & FROM)) /* 3.2.2, 3.3.3 */
    a |= KITH__SUB_A_SEND_UNAVAILABLE;
  if ((old & TO) && !(now & TO))
    a |= KITH__SUB_A_FORGET_PRESENCE;
  return a;
}

/* The 72 cases of Appendix A: 8 tables x 9 states, without pre-approval. */
static void test_rfc_appendix_a(void **state)
{
  size_t t, i, cases = 0;

  (void)state;
  for (t = 0; t < 8; t++) {
    for (i = 0; i < 9; i++) {
      const row_t *row = &rfc_tables[t].rows[i];
      unsigned old = flags_of(row->state);
      unsigned now = strcmp(row->next, "=") == 0 ? old : flags_of(row->next);
      kith__sub_result_t res;
      int changed;

      /* The table is typed in A.1 order. */
      assert_int_equal(old, rfc_states[i].flags);
      changed =
          kith__sub_apply(rfc_tables[t].dir, rfc_tables[t].type, old, 0, &res);
      if (res.flags != now || res.deliver != row->deliver)
        fail_msg("%s %s: got %s deliver=%d, RFC says %s deliver=%d",
                 rfc_tables[t].title, row->state,
                 kith__sub_state_name(res.flags), res.deliver, row->next,
                 row->deliver);
      assert_int_equal(changed, now != old);
      assert_int_equal(res.changed, now != old);
      assert_int_equal(res.push, visible(now) != visible(old));
      /* Without pre-approval support an 'A' row does nothing at all. */
      assert_int_equal(res.actions, expected_actions(old, now, row->notes) &
                                        ~KITH__SUB_A_PREAPPROVE);
      cases++;
    }
  }
  assert_int_equal(cases, 72);
}

/* Section 3.4: pre-approvals, with support switched on. */
static void test_preapproval(void **state)
{
  kith__sub_result_t r;

  (void)state;
  /* 3.4.1: "subscribed" with no request pending records a pre-approval
   * in None, None + Pending Out and To; it is not routed. */
  assert_int_equal(
      kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBED, 0, 1, &r), 1);
  assert_int_equal(r.flags, APPR);
  assert_false(r.deliver);
  assert_true(r.push);
  assert_true(r.actions & KITH__SUB_A_PREAPPROVE);
  kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBED, POUT, 1, &r);
  assert_int_equal(r.flags, POUT | APPR);
  kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBED, TO, 1, &r);
  assert_int_equal(r.flags, TO | APPR);
  assert_false(r.deliver);
  /* From / Both: ignored even with support. */
  assert_int_equal(kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBED,
                                   FROM | TO, 1, &r),
                   0);
  assert_false(r.deliver);
  assert_false(r.push);
  /* Pre-approving twice changes nothing. */
  assert_int_equal(
      kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBED, APPR, 1, &r), 0);
  assert_false(r.push);

  /* 3.4.2: the contact's request then is approved automatically: state
   * From (+ Pending Out) or Both, not delivered, 'subscribed' sent. */
  kith__sub_apply(KITH__SUB_INBOUND, KITH__PT_SUBSCRIBE, APPR, 1, &r);
  assert_int_equal(r.flags, FROM);
  assert_false(r.deliver);
  assert_true(r.push);
  assert_true(r.actions & KITH__SUB_A_REPLY_SUBSCRIBED);
  assert_true(r.actions & KITH__SUB_A_SEND_PRESENCE);
  kith__sub_apply(KITH__SUB_INBOUND, KITH__PT_SUBSCRIBE, POUT | APPR, 1, &r);
  assert_int_equal(r.flags, FROM | POUT);
  assert_false(r.deliver);
  kith__sub_apply(KITH__SUB_INBOUND, KITH__PT_SUBSCRIBE, TO | APPR, 1, &r);
  assert_int_equal(r.flags, FROM | TO);
  assert_true(r.actions & KITH__SUB_A_REPLY_SUBSCRIBED);

  /* A.2.4 footnote: "unsubscribed" cancels a pre-approval, unrouted. */
  kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_UNSUBSCRIBED, APPR, 1, &r);
  assert_int_equal(r.flags, 0);
  assert_false(r.deliver);
  assert_true(r.push);
  kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_UNSUBSCRIBED, TO | APPR, 0, &r);
  assert_int_equal(r.flags, TO);

  /* Other stanzas carry the pre-approval along. */
  kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBE, APPR, 1, &r);
  assert_int_equal(r.flags, POUT | APPR);
  assert_true(r.deliver);
  kith__sub_apply(KITH__SUB_INBOUND, KITH__PT_SUBSCRIBED, POUT | APPR, 1, &r);
  assert_int_equal(r.flags, TO | APPR);
  kith__sub_apply(KITH__SUB_INBOUND, KITH__PT_UNSUBSCRIBED, TO | APPR, 1, &r);
  assert_int_equal(r.flags, APPR);
  assert_true(r.actions & KITH__SUB_A_FORGET_PRESENCE);
  kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_UNSUBSCRIBE, TO | APPR, 1, &r);
  assert_int_equal(r.flags, APPR);

  /* 3.4: with a request pending, "subscribed" is a normal approval even
   * if an (invalid) approved bit is present: it is normalized away. */
  kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBED, PIN | APPR, 1, &r);
  assert_int_equal(r.flags, FROM);
  assert_true(r.deliver);
}

/* Without pre-approval support (client mode, no stream feature). */
static void test_preapproval_unsupported(void **state)
{
  static const unsigned states[] = {0, POUT, TO};
  kith__sub_result_t r;
  size_t i;

  (void)state;
  for (i = 0; i < 3; i++) {
    assert_int_equal(kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBED,
                                     states[i], 0, &r),
                     0);
    assert_int_equal(r.flags, states[i]);
    assert_false(r.deliver);
    assert_false(r.push);
    assert_int_equal(r.actions, 0);
  }
}

static void test_normalize(void **state)
{
  unsigned f;

  (void)state;
  assert_int_equal(kith__sub_normalize(TO | POUT), TO);
  assert_int_equal(kith__sub_normalize(FROM | PIN), FROM);
  assert_int_equal(kith__sub_normalize(FROM | APPR), FROM);
  assert_int_equal(kith__sub_normalize(PIN | APPR), PIN);
  assert_int_equal(kith__sub_normalize(FROM | TO | PIN | POUT | APPR),
                   FROM | TO);
  assert_int_equal(kith__sub_normalize(0x80u | TO), TO);
  assert_false(kith__sub_valid(TO | POUT));
  assert_true(kith__sub_valid(TO | PIN));
  assert_true(kith__sub_valid(POUT | APPR));
  /* Exactly twelve valid states; normalize lands on one, idempotently. */
  {
    unsigned valid = 0;

    for (f = 0; f < 32; f++) {
      unsigned n = kith__sub_normalize(f);

      assert_true(kith__sub_valid(n));
      assert_int_equal(kith__sub_normalize(n), n);
      assert_int_equal(kith__sub_state_flags(kith__sub_state(f)), n);
      valid += kith__sub_valid(f);
    }
    assert_int_equal(valid, KITH__ST_COUNT);
  }
}

/* Invariants over every rule and every raw flag combination. */
static void test_invariants(void **state)
{
  unsigned d, t, f;

  (void)state;
  for (d = 0; d < KITH__SUB_DIR_COUNT; d++) {
    for (t = 0; t < KITH__PT_COUNT; t++) {
      for (f = 0; f < 32; f++) {
        const kith__sub_rule_t *r = kith__sub_rule(d, t, f);
        unsigned old = kith__sub_normalize(f);
        kith__sub_result_t a, b;

        assert_non_null(r);
        /* Invalid input reads the rule of its normalized state. */
        assert_ptr_equal(r, kith__sub_rule(d, t, old));
        /* No rule produces an invalid combination. */
        assert_true(kith__sub_valid(r->next));
        /* A push is exactly a roster-visible change. */
        assert_int_equal(r->push, visible(r->next) != visible(old));
        /* Idempotence: the same stanza twice changes nothing more. */
        kith__sub_apply(d, t, f, 1, &a);
        assert_int_equal(kith__sub_apply(d, t, a.flags, 1, &b), 0);
        assert_int_equal(b.flags, a.flags);
        assert_false(b.push);
        /* Pre-approval never routes the stanza. */
        if (r->actions & KITH__SUB_A_PREAPPROVE)
          assert_false(r->deliver);
      }
    }
  }
  /* The examples the design leans on (auto-subscribe must not loop). */
  {
    kith__sub_result_t r;

    assert_int_equal(
        kith__sub_apply(KITH__SUB_OUTBOUND, KITH__PT_SUBSCRIBE, POUT, 1, &r),
        0);
    assert_int_equal(kith__sub_apply(KITH__SUB_INBOUND, KITH__PT_SUBSCRIBE,
                                     FROM | TO, 1, &r),
                     0);
    assert_false(r.deliver);
  }
  assert_null(kith__sub_rule(KITH__SUB_DIR_COUNT, KITH__PT_SUBSCRIBE, 0));
  assert_null(kith__sub_rule(KITH__SUB_INBOUND, KITH__PT_COUNT, 0));
}

static void test_names(void **state)
{
  size_t i;

  (void)state;
  for (i = 0; i < 9; i++)
    assert_string_equal(kith__sub_state_name(rfc_states[i].flags),
                        rfc_states[i].name);
  assert_string_equal(kith__sub_state_name(TO | APPR), "To (pre-approved)");
  assert_string_equal(kith__sub_state_name(TO | POUT), "To");
  assert_int_equal(kith__sub_ptype("subscribe"), KITH__PT_SUBSCRIBE);
  assert_int_equal(kith__sub_ptype("subscribed"), KITH__PT_SUBSCRIBED);
  assert_int_equal(kith__sub_ptype("unsubscribe"), KITH__PT_UNSUBSCRIBE);
  assert_int_equal(kith__sub_ptype("unsubscribed"), KITH__PT_UNSUBSCRIBED);
  assert_int_equal(kith__sub_ptype("probe"), KITH__PT_COUNT);
  assert_int_equal(kith__sub_ptype(NULL), KITH__PT_COUNT);
  assert_string_equal(kith__sub_ptype_name(KITH__PT_UNSUBSCRIBED),
                      "unsubscribed");
  assert_int_equal(kith__sub_of(FROM | TO), KITH_SUB_BOTH);
  assert_int_equal(kith__sub_of(FROM | POUT), KITH_SUB_FROM);
  assert_int_equal(kith__sub_of(TO | PIN | APPR), KITH_SUB_TO);
  assert_int_equal(kith__sub_of(PIN | POUT), KITH_SUB_NONE);
  assert_string_equal(kith_sub_name(KITH_SUB_FROM), "from");
  assert_string_equal(kith_sub_name((kith_sub_t)7), "?");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc_appendix_a),
      cmocka_unit_test(test_preapproval),
      cmocka_unit_test(test_preapproval_unsupported),
      cmocka_unit_test(test_normalize),
      cmocka_unit_test(test_invariants),
      cmocka_unit_test(test_names),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
