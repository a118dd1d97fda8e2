/*
 * kith CLI: roster and connection events as one line of text or JSON,
 * shared by `kith watch` and `kith component`.
 *
 * Which fields an event carries is one table (event_fields), read by both
 * the text and the JSON printer, so the two forms always agree.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Field groups of an event. */
#define F_OWNER 0x01u    /* owner */
#define F_ITEM 0x02u     /* subscription, ask, pending_in, approved */
#define F_PRESENCE 0x04u /* resource, show, priority, status */
#define F_NICK 0x08u     /* nick */
#define F_ROSTER 0x10u   /* name, groups, removed */
#define F_END 0x20u      /* status (a status name), text */
#define F_DELAY 0x40u    /* delay_ms */
#define F_TEXT 0x80u     /* text */
#define F_COUNT 0x100u   /* items, version */

#define F_SUB (F_OWNER | F_NICK | F_ITEM)
#define F_PRES (F_OWNER | F_PRESENCE | F_ITEM)

static const unsigned event_fields[KITH_EVENT_COUNT_] = {
    [KITH_EVENT_SESSION_START] = 0, /* printed by the command */
    [KITH_EVENT_DISCONNECTED] = F_END,
    [KITH_EVENT_CONNECTED] = 0,
    [KITH_EVENT_RECONNECT_SCHEDULED] = F_DELAY,
    [KITH_EVENT_STREAM_ERROR] = F_TEXT,
    [KITH_EVENT_ROSTER_RECEIVED] = F_OWNER | F_COUNT,
    [KITH_EVENT_ROSTER_UPDATE] = F_OWNER | F_ROSTER | F_ITEM,
    [KITH_EVENT_PRESENCE_SUBSCRIBE] = F_SUB,
    [KITH_EVENT_PRESENCE_SUBSCRIBED] = F_SUB,
    [KITH_EVENT_PRESENCE_UNSUBSCRIBE] = F_SUB,
    [KITH_EVENT_PRESENCE_UNSUBSCRIBED] = F_SUB,
    [KITH_EVENT_PRESENCE_AVAILABLE] = F_PRES,
    [KITH_EVENT_PRESENCE_UNAVAILABLE] = F_PRES,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST] = F_SUB,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED] = F_SUB,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVE] = F_SUB,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED] = F_SUB,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED] = F_SUB,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_CANCELLED] = F_SUB,
    [KITH_EVENT_GOT_ONLINE] = F_PRES,
    [KITH_EVENT_GOT_OFFLINE] = F_PRES,
    [KITH_EVENT_CHANGED_STATUS] = F_PRES,
    [KITH_EVENT_PRESENCE_RESET] = F_PRES,
    [KITH_EVENT_STORE_ERROR] = F_OWNER | F_END,
};

/* The presence <status/> text of the event's stanza, or NULL. */
static const char *status_text(const kith_event_t *ev)
{
  return ev->stanza ? kith_stanza_child_text(ev->stanza, "status", NULL) : NULL;
}

/* The node an event's counts describe, or NULL. */
static const kith_roster_node_t *count_node(const kith_roster_t *roster,
                                            const kith_event_t *ev)
{
  return ev->owner && roster ? kith_roster_node(roster, ev->owner) : NULL;
}

/* ---- JSON -----------------------------------------------------------------
 */

static json_t *str_or_null(const char *s)
{
  return s ? json_string(s) : json_null();
}

static void json_item_fields(json_t *o, const kith_roster_item_t *it)
{
  unsigned flags = it ? kith_roster_item_flags(it) : 0;

  json_object_set_new(o, "subscription",
                      it ? json_string(kith_sub_name(kith_roster_item_sub(it)))
                         : json_null());
  json_object_set_new(o, "ask",
                      (flags & KITH_ROSTER_PENDING_OUT)
                          ? json_string("subscribe")
                          : json_null());
  json_object_set_new(o, "pending_in",
                      json_boolean(flags & KITH_ROSTER_PENDING_IN));
  json_object_set_new(o, "approved",
                      json_boolean(flags & KITH_ROSTER_APPROVED));
}

static void json_roster_fields(json_t *o, const kith_event_t *ev)
{
  const char *name = ev->item ? kith_roster_item_name(ev->item) : NULL;
  json_t *arr = json_array();
  const char **g;
  size_t i, n;

  g = cli_item_groups(ev->item, &n);
  for (i = 0; g && i < n; i++)
    json_array_append_new(arr, json_string(g[i]));
  free(g);
  json_object_set_new(o, "name", name ? json_string(name) : json_null());
  json_object_set_new(o, "groups", arr);
  json_object_set_new(o, "removed", json_boolean(ev->removed));
}

static json_t *event_json(const kith_event_t *ev, unsigned f)
{
  json_t *o = json_object();

  json_object_set_new(o, "event", json_string(kith_event_name(ev->type)));
  json_object_set_new(o, "jid", str_or_null(ev->jid));
  if (f & F_OWNER)
    json_object_set_new(o, "owner", str_or_null(ev->owner));
  if (f & F_PRESENCE) {
    json_object_set_new(o, "resource", str_or_null(ev->resource));
    json_object_set_new(o, "show",
                        json_string(kith_show_name((kith_show_t)ev->show)));
    json_object_set_new(o, "priority", json_integer(ev->priority));
    json_object_set_new(o, "status", str_or_null(status_text(ev)));
  }
  if (f & F_NICK)
    json_object_set_new(o, "nick", str_or_null(ev->nick));
  if (f & F_ITEM)
    json_item_fields(o, ev->item);
  if (f & F_ROSTER)
    json_roster_fields(o, ev);
  return o;
}

/* Fields that need the roster rather than the event. */
static void json_other_fields(json_t *o, const kith_roster_t *roster,
                              const kith_event_t *ev, unsigned f)
{
  if (f & F_END) {
    json_object_set_new(o, "status", json_string(kith_status_name(ev->status)));
    json_object_set_new(o, "text", str_or_null(ev->text));
  }
  if (f & F_DELAY)
    json_object_set_new(o, "delay_ms", json_integer(ev->delay_ms));
  if (f & F_TEXT)
    json_object_set_new(o, "text", str_or_null(ev->text));
  if (f & F_COUNT) {
    const kith_roster_node_t *node = count_node(roster, ev);
    json_object_set_new(
        o, "items",
        json_integer(node ? (json_int_t)kith_roster_node_size(node) : 0));
    json_object_set_new(
        o, "version",
        str_or_null(node ? kith_roster_node_version(node) : NULL));
  }
}

/* ---- Text -----------------------------------------------------------------
 */

/* " key=value" unless value is NULL. */
static void put_kv(const char *key, const char *value)
{
  if (value == NULL)
    return;
  printf(" %s=", key);
  cli_put_value(stdout, value);
}

static void text_item_fields(const kith_roster_item_t *it)
{
  unsigned flags = it ? kith_roster_item_flags(it) : 0;

  if (it)
    printf(" subscription=%s", kith_sub_name(kith_roster_item_sub(it)));
  if (flags & KITH_ROSTER_PENDING_OUT)
    fputs(" ask=subscribe", stdout);
  if (flags & KITH_ROSTER_PENDING_IN)
    fputs(" pending-in", stdout);
  if (flags & KITH_ROSTER_APPROVED)
    fputs(" approved", stdout);
}

/* After the item flags, as in the item's text form (cli_item_put()). */
static void text_roster_fields(const kith_event_t *ev)
{
  const char **g;
  size_t i, n;

  g = cli_item_groups(ev->item, &n);
  for (i = 0; g && i < n; i++) {
    fputs(i == 0 ? " groups=" : ",", stdout);
    cli_put_value(stdout, g[i]);
  }
  free(g);
  if (ev->removed)
    fputs(" removed", stdout);
}

static void text_other_fields(const kith_roster_t *roster,
                              const kith_event_t *ev, unsigned f)
{
  if (f & F_END) {
    printf(" status=%s", kith_status_name(ev->status));
    put_kv("text", ev->text);
  }
  if (f & F_DELAY)
    printf(" delay_ms=%ld", ev->delay_ms);
  if (f & F_TEXT)
    put_kv("text", ev->text);
  if (f & F_COUNT) {
    const kith_roster_node_t *node = count_node(roster, ev);
    printf(" items=%zu", node ? kith_roster_node_size(node) : (size_t)0);
    put_kv("version", node ? kith_roster_node_version(node) : NULL);
  }
}

static void event_text(const kith_roster_t *roster, const kith_event_t *ev,
                       unsigned f)
{
  printf("%s %s", kith_event_name(ev->type), ev->jid ? ev->jid : "-");
  if (f & F_OWNER)
    put_kv("owner", ev->owner);
  if (f & F_PRESENCE) {
    put_kv("resource", ev->resource);
    printf(" show=%s priority=%d", kith_show_name((kith_show_t)ev->show),
           ev->priority);
    put_kv("status", status_text(ev));
  }
  if (f & F_NICK)
    put_kv("nick", ev->nick);
  if (f & F_ROSTER)
    put_kv("name", ev->item ? kith_roster_item_name(ev->item) : NULL);
  if (f & F_ITEM)
    text_item_fields(ev->item);
  if (f & F_ROSTER)
    text_roster_fields(ev);
  text_other_fields(roster, ev, f);
}

/* ---- Both -----------------------------------------------------------------
 */

int cli_end_line(void)
{
  fputc('\n', stdout);
  /* Readers follow through a pipe: every line goes out at once. */
  if (fflush(stdout) != 0 || ferror(stdout))
    return -1;
  return 0;
}

int cli_event_print(const cli_t *cli, const kith_roster_t *roster,
                    const kith_event_t *ev)
{
  unsigned f;

  if ((int)ev->type < 0 || ev->type >= KITH_EVENT_COUNT_ ||
      ev->type == KITH_EVENT_SESSION_START)
    return 0;
  f = event_fields[ev->type];
  if (cli->json) {
    json_t *o = event_json(ev, f);
    json_other_fields(o, roster, ev, f);
    json_dumpf(o, stdout, JSON_COMPACT);
    json_decref(o);
  } else {
    event_text(roster, ev, f);
  }
  return cli_end_line();
}
