/*
 * The RFC 6121 subscription state machine: one table, read by the code
 * and by tests/unit/test_subscription.c (which checks it against its own
 * transcription of the RFC). See subscription.h for the vocabulary and the
 * decisions taken where the RFC leaves room.
 */
#include <string.h>

#include "roster/subscription.h"

/* Flag sets of the twelve states, in kith__sub_state_t order. */
#define S_N 0u
#define S_NPO KITH_ROSTER_PENDING_OUT
#define S_NPI KITH_ROSTER_PENDING_IN
#define S_NPOI (KITH_ROSTER_PENDING_OUT | KITH_ROSTER_PENDING_IN)
#define S_T KITH_ROSTER_TO
#define S_TPI (KITH_ROSTER_TO | KITH_ROSTER_PENDING_IN)
#define S_F KITH_ROSTER_FROM
#define S_FPO (KITH_ROSTER_FROM | KITH_ROSTER_PENDING_OUT)
#define S_B (KITH_ROSTER_FROM | KITH_ROSTER_TO)
#define S_NA (S_N | KITH_ROSTER_APPROVED)
#define S_NPOA (S_NPO | KITH_ROSTER_APPROVED)
#define S_TA (S_T | KITH_ROSTER_APPROVED)

static const unsigned char state_flags[KITH__ST_COUNT] = {
    S_N, S_NPO, S_NPI, S_NPOI, S_T, S_TPI, S_F, S_FPO, S_B, S_NA, S_NPOA, S_TA,
};

static const char *const state_names[KITH__ST_COUNT] = {
    "None",
    "None + Pending Out",
    "None + Pending In",
    "None + Pending Out+In",
    "To",
    "To + Pending In",
    "From",
    "From + Pending Out",
    "Both",
    "None (pre-approved)",
    "None + Pending Out (pre-approved)",
    "To (pre-approved)",
};

/* Short names for the action bits, to keep the table's rows on one line. */
#define REPLY KITH__SUB_A_REPLY_SUBSCRIBED
#define UNSUB KITH__SUB_A_REPLY_UNSUBSCRIBED
#define PRES KITH__SUB_A_SEND_PRESENCE
#define UNAV KITH__SUB_A_SEND_UNAVAILABLE
#define PREAPP KITH__SUB_A_PREAPPROVE
#define FORGET KITH__SUB_A_FORGET_PRESENCE

/* A rule: R(next state, deliver/route, roster push, actions). */
/* clang-format off */
#define R(next, deliver, push, actions) {(next), (deliver), (push), (actions)}
/* clang-format on */

/*
 * rules[direction][type][state]. Rows follow kith__sub_state_t: the nine
 * states of RFC 6121 A.1, then None, None + Pending Out and To with a
 * pre-approval (section 3.4). "no state change" is a row whose next
 * state is its own.
 *
 * clang-format is off for the table: one aligned row per state, with the
 * state named beside it, is what lets a reader check it against the RFC.
 */
/* clang-format off */
static const kith__sub_rule_t rules[KITH__SUB_DIR_COUNT][KITH__PT_COUNT]
                                   [KITH__ST_COUNT] = {
    [KITH__SUB_OUTBOUND] = {
        /* A.2.1 and 3.1.2: always routed; ask='subscribe' appears. */
        [KITH__PT_SUBSCRIBE] = {
            R(S_NPO, 1, 1, 0),   /* None */
            R(S_NPO, 1, 0, 0),   /* None + Pending Out: no change */
            R(S_NPOI, 1, 1, 0),  /* None + Pending In */
            R(S_NPOI, 1, 0, 0),  /* None + Pending Out+In: no change */
            R(S_T, 1, 0, 0),     /* To: no change */
            R(S_TPI, 1, 0, 0),   /* To + Pending In: no change */
            R(S_FPO, 1, 1, 0),   /* From */
            R(S_FPO, 1, 0, 0),   /* From + Pending Out: no change */
            R(S_B, 1, 0, 0),     /* Both: no change */
            R(S_NPOA, 1, 1, 0),  /* None, pre-approved */
            R(S_NPOA, 1, 0, 0),  /* None + Pending Out, pre-approved */
            R(S_TA, 1, 0, 0),    /* To, pre-approved */
        },
        /* A.2.3, 3.1.5 and 3.4: approve a pending request, else
         * pre-approve (not routed), else ignore silently. */
        [KITH__PT_SUBSCRIBED] = {
            R(S_NA, 0, 1, PREAPP),   /* None: pre-approval */
            R(S_NPOA, 0, 1, PREAPP), /* None + Pending Out: pre-approval */
            R(S_F, 1, 1, PRES),      /* None + Pending In */
            R(S_FPO, 1, 1, PRES),    /* None + Pending Out+In */
            R(S_TA, 0, 1, PREAPP),   /* To: pre-approval */
            R(S_B, 1, 1, PRES),      /* To + Pending In */
            R(S_F, 0, 0, 0),         /* From: ignored */
            R(S_FPO, 0, 0, 0),       /* From + Pending Out: ignored */
            R(S_B, 0, 0, 0),         /* Both: ignored */
            R(S_NA, 0, 0, 0),        /* already pre-approved */
            R(S_NPOA, 0, 0, 0),      /* already pre-approved */
            R(S_TA, 0, 0, 0),        /* already pre-approved */
        },
        /* A.2.2 and 3.3.2: always routed; the owner loses `to`. */
        [KITH__PT_UNSUBSCRIBE] = {
            R(S_N, 1, 0, 0),         /* None: no change */
            R(S_N, 1, 1, 0),         /* None + Pending Out */
            R(S_NPI, 1, 0, 0),       /* None + Pending In: no change */
            R(S_NPI, 1, 1, 0),       /* None + Pending Out+In */
            R(S_N, 1, 1, FORGET),    /* To */
            R(S_NPI, 1, 1, FORGET),  /* To + Pending In */
            R(S_F, 1, 0, 0),         /* From: no change */
            R(S_F, 1, 1, 0),         /* From + Pending Out */
            R(S_F, 1, 1, FORGET),    /* Both */
            R(S_NA, 1, 0, 0),        /* None, pre-approved: no change */
            R(S_NA, 1, 1, 0),        /* None + Pending Out, pre-approved */
            R(S_NA, 1, 1, FORGET),   /* To, pre-approved */
        },
        /* A.2.4, 3.2.2 and 3.4: deny a request or cancel `from`; with
         * nothing to deny, cancel a pre-approval and route nothing. */
        [KITH__PT_UNSUBSCRIBED] = {
            R(S_N, 0, 0, 0),         /* None: no change */
            R(S_NPO, 0, 0, 0),       /* None + Pending Out: no change */
            R(S_N, 1, 0, 0),         /* None + Pending In (denied) */
            R(S_NPO, 1, 0, 0),       /* None + Pending Out+In (denied) */
            R(S_T, 0, 0, 0),         /* To: no change */
            R(S_T, 1, 0, 0),         /* To + Pending In (denied) */
            R(S_N, 1, 1, UNAV),      /* From */
            R(S_NPO, 1, 1, UNAV),    /* From + Pending Out */
            R(S_T, 1, 1, UNAV),      /* Both */
            R(S_N, 0, 1, 0),         /* pre-approval cancelled */
            R(S_NPO, 0, 1, 0),       /* pre-approval cancelled */
            R(S_T, 0, 1, 0),         /* pre-approval cancelled */
        },
    },
    [KITH__SUB_INBOUND] = {
        /* A.3.1, 3.1.3 and 3.4: a new request is delivered (pending_in,
         * not visible in the roster); a duplicate is dropped; a
         * subscribed contact or a pre-approval gets an automatic reply. */
        [KITH__PT_SUBSCRIBE] = {
            R(S_NPI, 1, 0, 0),            /* None */
            R(S_NPOI, 1, 0, 0),           /* None + Pending Out */
            R(S_NPI, 0, 0, 0),            /* None + Pending In: no change */
            R(S_NPOI, 0, 0, 0),           /* None + Pending Out+In: same */
            R(S_TPI, 1, 0, 0),            /* To */
            R(S_TPI, 0, 0, 0),            /* To + Pending In: no change */
            R(S_F, 0, 0, REPLY | PRES),   /* From: auto-reply */
            R(S_FPO, 0, 0, REPLY | PRES), /* From + Pending Out: auto-reply */
            R(S_B, 0, 0, REPLY | PRES),   /* Both: auto-reply */
            R(S_F, 0, 1, REPLY | PRES),   /* None, pre-approved */
            R(S_FPO, 0, 1, REPLY | PRES), /* None + Pending Out, pre-appr. */
            R(S_B, 0, 1, REPLY | PRES),   /* To, pre-approved */
        },
        /* A.3.3 and 3.1.6: only an answer to our pending request counts. */
        [KITH__PT_SUBSCRIBED] = {
            R(S_N, 0, 0, 0),     /* None: no change */
            R(S_T, 1, 1, 0),     /* None + Pending Out */
            R(S_NPI, 0, 0, 0),   /* None + Pending In: no change */
            R(S_TPI, 1, 1, 0),   /* None + Pending Out+In */
            R(S_T, 0, 0, 0),     /* To: no change */
            R(S_TPI, 0, 0, 0),   /* To + Pending In: no change */
            R(S_F, 0, 0, 0),     /* From: no change */
            R(S_B, 1, 1, 0),     /* From + Pending Out */
            R(S_B, 0, 0, 0),     /* Both: no change */
            R(S_NA, 0, 0, 0),    /* None, pre-approved: no change */
            R(S_TA, 1, 1, 0),    /* None + Pending Out, pre-approved */
            R(S_TA, 0, 0, 0),    /* To, pre-approved: no change */
        },
        /* A.3.2 and 3.3.3: the contact withdraws its request or its
         * subscription; losing `from` sends our unavailable presence, and
         * every delivered one is acknowledged with 'unsubscribed' (Table 7
         * footnote [1]). */
        [KITH__PT_UNSUBSCRIBE] = {
            R(S_N, 0, 0, 0),      /* None: no change */
            R(S_NPO, 0, 0, 0),    /* None + Pending Out: no change */
            R(S_N, 1, 0, UNSUB),         /* None + Pending In */
            R(S_NPO, 1, 0, UNSUB),       /* None + Pending Out+In */
            R(S_T, 0, 0, 0),             /* To: no change */
            R(S_T, 1, 0, UNSUB),         /* To + Pending In */
            R(S_N, 1, 1, UNAV | UNSUB),  /* From */
            R(S_NPO, 1, 1, UNAV | UNSUB), /* From + Pending Out */
            R(S_T, 1, 1, UNAV | UNSUB),  /* Both */
            R(S_NA, 0, 0, 0),     /* None, pre-approved: no change */
            R(S_NPOA, 0, 0, 0),   /* None + Pending Out, pre-appr.: same */
            R(S_TA, 0, 0, 0),     /* To, pre-approved: no change */
        },
        /* A.3.4 and 3.2.3: the contact denies our request or cancels our
         * subscription. */
        [KITH__PT_UNSUBSCRIBED] = {
            R(S_N, 0, 0, 0),         /* None: no change */
            R(S_N, 1, 1, 0),         /* None + Pending Out */
            R(S_NPI, 0, 0, 0),       /* None + Pending In: no change */
            R(S_NPI, 1, 1, 0),       /* None + Pending Out+In */
            R(S_N, 1, 1, FORGET),    /* To */
            R(S_NPI, 1, 1, FORGET),  /* To + Pending In */
            R(S_F, 0, 0, 0),         /* From: no change */
            R(S_F, 1, 1, 0),         /* From + Pending Out */
            R(S_F, 1, 1, FORGET),    /* Both */
            R(S_NA, 0, 0, 0),        /* None, pre-approved: no change */
            R(S_NA, 1, 1, 0),        /* None + Pending Out, pre-approved */
            R(S_NA, 1, 1, FORGET),   /* To, pre-approved */
        },
    },
};
/* clang-format on */

unsigned kith__sub_normalize(unsigned flags)
{
  flags &= KITH__SUB_MASK;
  if (flags & KITH_ROSTER_TO)
    flags &= ~KITH_ROSTER_PENDING_OUT;
  if (flags & KITH_ROSTER_FROM)
    flags &= ~KITH_ROSTER_PENDING_IN;
  if (flags & (KITH_ROSTER_FROM | KITH_ROSTER_PENDING_IN))
    flags &= ~KITH_ROSTER_APPROVED;
  return flags;
}

int kith__sub_valid(unsigned flags)
{
  return kith__sub_normalize(flags) == flags;
}

kith__sub_state_t kith__sub_state(unsigned flags)
{
  unsigned i;

  flags = kith__sub_normalize(flags);
  for (i = 0; i < KITH__ST_COUNT; i++)
    if (state_flags[i] == flags)
      return (kith__sub_state_t)i;
  /* Unreachable: every normalized set is one of the twelve. */
  return KITH__ST_NONE;
}

unsigned kith__sub_state_flags(kith__sub_state_t state)
{
  return (unsigned)state < KITH__ST_COUNT ? state_flags[state] : 0u;
}

const char *kith__sub_state_name(unsigned flags)
{
  return state_names[kith__sub_state(flags)];
}

kith_sub_t kith__sub_of(unsigned flags)
{
  int from = (flags & KITH_ROSTER_FROM) != 0,
      to = (flags & KITH_ROSTER_TO) != 0;

  if (from && to)
    return KITH_SUB_BOTH;
  return from ? KITH_SUB_FROM : to ? KITH_SUB_TO : KITH_SUB_NONE;
}

const char *kith_sub_name(kith_sub_t sub)
{
  static const char *const names[] = {"none", "to", "from", "both"};

  return (unsigned)sub < 4 ? names[sub] : "?";
}

const kith__sub_rule_t *kith__sub_rule(kith__sub_dir_t dir, kith__ptype_t type,
                                       unsigned flags)
{
  if ((unsigned)dir >= KITH__SUB_DIR_COUNT || (unsigned)type >= KITH__PT_COUNT)
    return NULL;
  return &rules[dir][type][kith__sub_state(flags)];
}

int kith__sub_apply(kith__sub_dir_t dir, kith__ptype_t type, unsigned flags,
                    int preapproval, kith__sub_result_t *out)
{
  const kith__sub_rule_t *r = kith__sub_rule(dir, type, flags);

  flags = kith__sub_normalize(flags);
  memset(out, 0, sizeof(*out));
  out->flags = flags;
  if (r == NULL)
    return 0;
  /* Without pre-approval support the stanza means nothing here (RFC 6121
   * A.2.3: "no state change") and the pre-approving row does not apply. */
  if ((r->actions & KITH__SUB_A_PREAPPROVE) && !preapproval)
    return 0;
  out->flags = r->next;
  out->changed = r->next != flags;
  out->deliver = r->deliver;
  out->push = r->push;
  out->actions = r->actions;
  return out->changed;
}

kith__ptype_t kith__sub_ptype(const char *type)
{
  unsigned i;

  if (type == NULL)
    return KITH__PT_COUNT;
  for (i = 0; i < KITH__PT_COUNT; i++)
    if (strcmp(type, kith__sub_ptype_name((kith__ptype_t)i)) == 0)
      return (kith__ptype_t)i;
  return KITH__PT_COUNT;
}

const char *kith__sub_ptype_name(kith__ptype_t type)
{
  static const char *const names[KITH__PT_COUNT] = {
      "subscribe", "subscribed", "unsubscribe", "unsubscribed"};

  return (unsigned)type < KITH__PT_COUNT ? names[type] : "?";
}

void kith__sub_events(kith__ptype_t type, unsigned old, kith_event_type_t ev[2])
{
  switch (type) {
  case KITH__PT_SUBSCRIBE:
    ev[0] = KITH_EVENT_PRESENCE_SUBSCRIBE;
    ev[1] = KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST;
    return;
  case KITH__PT_SUBSCRIBED:
    ev[0] = KITH_EVENT_PRESENCE_SUBSCRIBED;
    ev[1] = KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED;
    return;
  case KITH__PT_UNSUBSCRIBE:
    ev[0] = KITH_EVENT_PRESENCE_UNSUBSCRIBE;
    ev[1] = (old & KITH_ROSTER_PENDING_IN) && !(old & KITH_ROSTER_FROM)
                ? KITH_EVENT_ROSTER_SUBSCRIPTION_CANCELLED
                : KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVE;
    return;
  default:
    ev[0] = KITH_EVENT_PRESENCE_UNSUBSCRIBED;
    ev[1] = (old & KITH_ROSTER_PENDING_OUT) && !(old & KITH_ROSTER_TO)
                ? KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED
                : KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED;
    return;
  }
}
