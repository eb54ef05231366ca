// The ledger's invariants, checked in SQL on a live database, and the rebuild of the balance
// projection from the entries. Used by `ledger verify` / `ledger rebuild` and after every test suite.
import { sql, type SQL } from "drizzle-orm";
import { queryRows, type LedgerDb } from "./client.js";

export interface CheckResult {
  name: string;
  description: string;
  /** How many rows (owners, entries, nonces, ...) break the rule; 0 when it holds. */
  violations: number;
  /** A few offenders, for the report. */
  examples: string[];
}

export interface VerifyReport {
  ok: boolean;
  checks: CheckResult[];
}

const EXAMPLES_MAX = 5;

interface Check {
  name: string;
  description: string;
  /** Returns one row per offender, with a readable `example` column. */
  offenders: SQL;
}

const CHECKS: Check[] = [
  {
    name: "accounts-sum-zero",
    description: "the sum over all accounts' postings is zero",
    offenders: sql`select 'sum of all postings = ' || s as example
                   from (select coalesce(sum(amount), 0) as s from ledger_postings) t where s <> 0`,
  },
  {
    name: "entries-balanced",
    description: "every entry has two postings, the owner's and its operation's, that sum to zero",
    offenders: sql`select 'entry ' || e.id || ': ' || count(p.entry_id) || ' postings summing to ' || coalesce(sum(p.amount), 0) as example
                   from ledger_entries e left join ledger_postings p on p.entry_id = e.id
                   group by e.id, e.owner_id, e.operation, e.amount
                   having count(p.entry_id) <> 2
                       or coalesce(sum(p.amount), 0) <> 0
                       or count(*) filter (where p.account = 'owner:' || e.owner_id and p.amount = e.amount) <> 1
                       or count(*) filter (where p.account = 'operation:' || e.operation and p.amount = -e.amount) <> 1`,
  },
  {
    name: "balance-equals-entries",
    description: "every owner's balance equals the sum of its entries",
    offenders: sql`select coalesce(b.owner_id, e.owner_id) || ': balance ' || coalesce(b.balance::text, 'missing')
                          || ', entries sum to ' || coalesce(e.total, 0) as example
                   from ledger_owners b
                   full join (select owner_id, sum(amount) as total from ledger_entries group by owner_id) e
                     using (owner_id)
                   where coalesce(b.balance, 0) <> coalesce(e.total, 0)`,
  },
  {
    name: "balance-equals-postings",
    description: "every owner's balance equals the sum of its account's postings",
    offenders: sql`select coalesce(b.owner_id, p.owner_id) || ': balance ' || coalesce(b.balance::text, 'missing')
                          || ', postings sum to ' || coalesce(p.total, 0) as example
                   from ledger_owners b
                   full join (select substr(account, 7) as owner_id, sum(amount) as total
                              from ledger_postings where account like 'owner:%' group by account) p
                     using (owner_id)
                   where coalesce(b.balance, 0) <> coalesce(p.total, 0)`,
  },
  {
    name: "running-balance-chain",
    description:
      "each owner's entries are numbered 1..n with no gap or fork, and previous balance + amount = balance after",
    offenders: sql`select owner_id || ' entry ' || id || ' (#' || sequence || '): ' ||
                          case when sequence <> rn then 'expected #' || rn
                               else coalesce(prev, 0) || ' + ' || amount || ' <> ' || balance_after end as example
                   from (select id, owner_id, sequence, amount, balance_after,
                                row_number() over w as rn,
                                lag(balance_after) over w as prev
                         from ledger_entries window w as (partition by owner_id order by sequence, id)) c
                   where sequence <> rn or coalesce(prev, 0) + amount <> balance_after`,
  },
  {
    name: "projection-head",
    description: "each balance row's last sequence is its owner's newest entry",
    offenders: sql`select b.owner_id || ': last_sequence ' || b.last_sequence || ', newest entry #' || coalesce(e.head, 0) as example
                   from ledger_owners b
                   left join (select owner_id, max(sequence) as head from ledger_entries group by owner_id) e using (owner_id)
                   where b.last_sequence <> coalesce(e.head, 0)`,
  },
  {
    name: "no-negative-balance",
    description: "no owner's balance, nor any running balance, is below zero",
    offenders: sql`select owner_id || ': balance ' || balance as example from ledger_owners where balance < 0
                   union all
                   select owner_id || ' entry ' || id || ': balance after ' || balance_after from ledger_entries where balance_after < 0`,
  },
  {
    name: "nonce-once-per-app",
    description: "each nonce appears at most once per app",
    offenders: sql`select app || ' nonce ' || nonce || ' x' || count(*) as example
                   from ledger_entries group by app, nonce having count(*) > 1`,
  },
  {
    name: "limit-once-per-period",
    description: "each limited operation appears at most once per owner per period",
    offenders: sql`select owner_id || ' ' || operation || ' ' || limit_period || ' x' || count(*) as example
                   from ledger_entries where limit_period is not null
                   group by owner_id, operation, limit_period having count(*) > 1`,
  },
  {
    name: "grant-per-expiring-credit",
    description:
      "every credit entry with an expiry has its grant (part 0) of the same app, amount and expiry; every grant has its entry: that credit, or a TRANSFER_IN whose parts add up to at most its amount",
    offenders: sql`select coalesce(e.owner_id, g.owner_id) || ' #' || coalesce(e.sequence, g.sequence) || ': ' ||
                          case when g.owner_id is null then 'credit with expiry but no grant'
                               when e.owner_id is null then 'grant without its entry'
                               else 'grant differs from its entry' end as example
                   from (select * from ledger_entries where expires_at is not null and amount > 0 and operation <> 'EXPIRY') e
                   full join (select * from ledger_grants g0 where not exists (
                                select 1 from ledger_entries t where t.owner_id = g0.owner_id and t.sequence = g0.sequence
                                  and t.operation = 'TRANSFER_IN')) g
                     on g.owner_id = e.owner_id and g.sequence = e.sequence
                   where g.owner_id is null or e.owner_id is null or g.part <> 0
                      or g.amount <> e.amount or g.app <> e.app or g.expires_at <> e.expires_at
                   union all
                   select t.owner_id || ' #' || t.sequence || ': TRANSFER_IN of ' || t.amount || ' with grants of ' || sum(g.amount)
                   from ledger_entries t join ledger_grants g on g.owner_id = t.owner_id and g.sequence = t.sequence
                   where t.operation = 'TRANSFER_IN'
                   group by t.owner_id, t.sequence, t.amount
                   having sum(g.amount) > t.amount or count(distinct g.expires_at) <> count(*)`,
  },
  {
    name: "grant-remaining",
    description:
      "every grant's remainder is its amount less its allocations (taken less given back), within 0..amount",
    offenders: sql`select g.owner_id || ' grant #' || g.sequence || '.' || g.part || ': remaining ' || g.remaining
                          || ', amount ' || g.amount || ' less allocations ' || coalesce(a.taken, 0) as example
                   from ledger_grants g
                   left join (select owner_id, grant_sequence, grant_part, sum(amount) as taken from ledger_allocations
                              group by owner_id, grant_sequence, grant_part) a
                     on a.owner_id = g.owner_id and a.grant_sequence = g.sequence and a.grant_part = g.part
                   where g.remaining <> g.amount - coalesce(a.taken, 0) or g.remaining < 0 or g.remaining > g.amount`,
  },
  {
    name: "allocations-match-entries",
    description:
      "every allocation belongs to an entry of its owner made after its grant: a debit or EXPIRY takes (an EXPIRY exactly its amount, a debit at most), only a REVERSAL gives back, at most its amount",
    offenders: sql`select a.owner_id || ' #' || a.sequence || ': ' ||
                          case when e.id is null then 'allocation without its entry'
                               when a.last_grant >= a.sequence then 'allocation from a later grant'
                               when a.gives and e.operation <> 'REVERSAL' then 'credits given back by a ' || e.operation
                               when a.takes and e.amount >= 0 then 'allocation of an entry that debits nothing'
                               else 'allocations of ' || a.taken || ' for an entry of ' || e.amount end as example
                   from (select owner_id, sequence, max(grant_sequence) as last_grant, sum(amount) as taken,
                                bool_or(amount > 0) as takes, bool_or(amount < 0) as gives
                         from ledger_allocations group by owner_id, sequence) a
                   left join ledger_entries e on e.owner_id = a.owner_id and e.sequence = a.sequence
                   where e.id is null or a.last_grant >= a.sequence
                      or (a.takes and a.gives)
                      or (a.gives and (e.operation <> 'REVERSAL' or e.amount <= 0 or -a.taken > e.amount))
                      or (a.takes and (e.amount >= 0 or a.taken > -e.amount))
                      or (e.operation = 'EXPIRY' and a.taken <> -e.amount)`,
  },
  {
    name: "burn-order",
    description:
      "every debit of available credits took the soonest-expiring first: no grant sooner in burn order, unexpired, with credits neither spent nor held, was passed over for a later grant or for credits without expiry (captures spend their hold's credits, reversals their credit's)",
    offenders: sql`with debit as (
                     select e.owner_id, e.sequence, e.created_at, -e.amount as debited,
                            coalesce((select sum(a.amount) from ledger_allocations a
                                      where a.owner_id = e.owner_id and a.sequence = e.sequence), 0) as from_grants
                     from ledger_entries e
                     where e.amount < 0 and e.operation not in ('EXPIRY', 'REVERSAL') and e.hold_id is null)
                   select d.owner_id || ' #' || d.sequence || ': grant #' || h.sequence || '.' || h.part || ' (expiring '
                          || h.expires_at || ') still had credits after it' as example
                   from debit d
                   join ledger_grants h on h.owner_id = d.owner_id and h.sequence < d.sequence and h.expires_at > d.created_at
                   where h.amount - coalesce((select sum(x.amount) from ledger_allocations x
                                              where x.owner_id = h.owner_id and x.grant_sequence = h.sequence
                                                and x.grant_part = h.part and x.sequence <= d.sequence), 0)
                                  - coalesce((select sum((w->>2)::bigint) from ledger_holds hh, jsonb_array_elements(hh.draws) w
                                              where hh.owner_id = d.owner_id and hh.sequence < d.sequence
                                                and coalesce(hh.end_sequence, 9223372036854775807) > d.sequence
                                                and hh.expires_at > d.created_at
                                                and (w->>0)::bigint = h.sequence and (w->>1)::int = h.part), 0) > 0
                     and (d.from_grants < d.debited
                          or exists (select 1 from ledger_allocations a
                                     join ledger_grants g on g.owner_id = a.owner_id and g.sequence = a.grant_sequence
                                                          and g.part = a.grant_part
                                     where a.owner_id = d.owner_id and a.sequence = d.sequence
                                       and (g.expires_at, g.sequence, g.part) > (h.expires_at, h.sequence, h.part)))`,
  },
  {
    name: "no-spend-after-expiry",
    description:
      "no debit takes credits from a grant at or after the grant's expiry, but a capture of the credits its hold held",
    offenders: sql`select a.owner_id || ' #' || a.sequence || ' took ' || a.amount || ' from grant #' || g.sequence
                          || '.' || g.part || ' expired at ' || g.expires_at as example
                   from ledger_allocations a
                   join ledger_entries e on e.owner_id = a.owner_id and e.sequence = a.sequence
                   join ledger_grants g on g.owner_id = a.owner_id and g.sequence = a.grant_sequence and g.part = a.grant_part
                   where a.amount > 0 and e.operation <> 'EXPIRY' and e.hold_id is null and e.created_at >= g.expires_at`,
  },
  {
    name: "expiries-of-grants",
    description:
      "every EXPIRY entry takes from one grant, at or after its expiry, naming that expiry; a grant is marked with its newest",
    offenders: sql`select e.owner_id || ' #' || e.sequence || ': ' ||
                          case when count(a.grant_sequence) <> 1 then 'EXPIRY taking from ' || count(a.grant_sequence) || ' grants'
                               when bool_or(e.created_at < g.expires_at) then 'EXPIRY of grant #' || min(g.sequence) || '.' || min(g.part) || ' before its expiry'
                               else 'EXPIRY of grant #' || min(g.sequence) || '.' || min(g.part) || ' names another expiry' end as example
                   from ledger_entries e
                   left join ledger_allocations a on a.owner_id = e.owner_id and a.sequence = e.sequence
                   left join ledger_grants g on g.owner_id = a.owner_id and g.sequence = a.grant_sequence and g.part = a.grant_part
                   where e.operation = 'EXPIRY'
                   group by e.owner_id, e.sequence, e.created_at, e.expires_at
                   having count(a.grant_sequence) <> 1 or bool_or(e.created_at < g.expires_at)
                       or bool_or(e.expires_at is distinct from g.expires_at)
                   union all
                   select g.owner_id || ' grant #' || g.sequence || '.' || g.part || ': marked #'
                          || coalesce(g.expired_sequence::text, 'none') || ', newest expiry #' || coalesce(max(e.sequence)::text, 'none')
                   from ledger_grants g
                   left join ledger_allocations a on a.owner_id = g.owner_id and a.grant_sequence = g.sequence and a.grant_part = g.part
                   left join ledger_entries e on e.owner_id = a.owner_id and e.sequence = a.sequence and e.operation = 'EXPIRY'
                   group by g.owner_id, g.sequence, g.part, g.expired_sequence
                   having max(e.sequence) is distinct from g.expired_sequence`,
  },
  {
    name: "balance-is-credits-plus-remainders",
    description:
      "every owner's balance is its credits without expiry (never below zero) plus the remainders of its open grants",
    offenders: sql`select o.owner_id || ': balance ' || o.balance || ', credits without expiry ' || coalesce(f.free, 0)
                          || ' + remainders ' || coalesce(g.open, 0) as example
                   from ledger_owners o
                   left join (select owner_id, sum(remaining) as open from ledger_grants group by owner_id) g using (owner_id)
                   left join (select e.owner_id,
                                     -- what an entry did to the credits without expiry: its amount, less what it
                                     -- granted, plus what it took from grants (less what it gave back to them)
                                     sum(e.amount - coalesce(n.granted, 0) + coalesce(a.taken, 0)) as free
                              from ledger_entries e
                              left join (select owner_id, sequence, sum(amount) as taken from ledger_allocations
                                         group by owner_id, sequence) a
                                on a.owner_id = e.owner_id and a.sequence = e.sequence
                              left join (select owner_id, sequence, sum(amount) as granted from ledger_grants
                                         group by owner_id, sequence) n
                                on n.owner_id = e.owner_id and n.sequence = e.sequence
                              group by e.owner_id) f using (owner_id)
                   where o.balance <> coalesce(f.free, 0) + coalesce(g.open, 0) or coalesce(f.free, 0) < 0`,
  },
  {
    name: "held-is-active-holds",
    description:
      "every owner's held credits are the sum of its active holds, and never more than its balance",
    offenders: sql`select o.owner_id || ': held ' || o.held || ', active holds ' || coalesce(h.total, 0) as example
                   from ledger_owners o
                   left join (select owner_id, sum(amount) as total from ledger_holds where status = 'active'
                              group by owner_id) h using (owner_id)
                   where o.held <> coalesce(h.total, 0) or o.held > o.balance`,
  },
  {
    name: "held-after-chain",
    description:
      "each entry's held_after is the previous one's plus its hold's amount for a HOLD, less it for the entry that ended the hold, unchanged otherwise; the newest is the owner's held",
    offenders: sql`select c.owner_id || ' #' || c.sequence || ' (' || c.operation || '): held after ' || c.held_after
                          || ', expected ' || (coalesce(c.prev, 0) + c.delta) as example
                   from (select e.owner_id, e.sequence, e.operation, e.held_after,
                                lag(e.held_after) over (partition by e.owner_id order by e.sequence) as prev,
                                case when e.operation = 'HOLD' then coalesce(h.amount, 0)
                                     when h.end_sequence = e.sequence then -h.amount else 0 end as delta
                         from ledger_entries e left join ledger_holds h on h.id = e.hold_id) c
                   where c.held_after <> coalesce(c.prev, 0) + c.delta
                   union all
                   select o.owner_id || ': held ' || o.held || ', newest entry says ' || e.held_after
                   from ledger_owners o join ledger_entries e on e.owner_id = o.owner_id and e.sequence = o.last_sequence
                   where e.held_after <> o.held`,
  },
  {
    name: "holds-match-entries",
    description:
      "every hold has its HOLD entry (its owner, app, sequence and expiry); an ended hold has one ending entry: a capture of its operation for its captured amount (never above the hold), a HOLD_RELEASE, or a HOLD_EXPIRY at or after its expiry; an active one none",
    offenders: sql`select h.id || ': ' ||
                          case when s.id is null then 'no HOLD entry at #' || h.sequence
                               when h.status = 'active' then 'active with an ending entry'
                               when x.id is null then h.status || ' without its ending entry'
                               else h.status || ' ended by ' || x.operation || ' ' || x.amount end as example
                   from ledger_holds h
                   left join ledger_entries s on s.owner_id = h.owner_id and s.sequence = h.sequence and s.hold_id = h.id
                                             and s.operation = 'HOLD' and s.app = h.app and s.expires_at = h.expires_at
                   left join ledger_entries x on x.owner_id = h.owner_id and x.sequence = h.end_sequence and x.hold_id = h.id
                   where s.id is null
                      or (h.status = 'active') <> (h.end_sequence is null)
                      or (h.status <> 'active' and (x.id is null or x.app <> h.app or not (
                            (h.status = 'captured' and x.operation = h.operation and -x.amount = h.captured_amount
                             and h.captured_amount between 1 and h.amount)
                         or (h.status = 'released' and x.operation = 'HOLD_RELEASE')
                         or (h.status = 'expired' and x.operation = 'HOLD_EXPIRY' and x.created_at >= h.expires_at))))
                   union all
                   select e.hold_id || ': ' || count(*) || ' entries after its HOLD entry'
                   from ledger_entries e where e.hold_id is not null and e.operation <> 'HOLD'
                   group by e.hold_id having count(*) > 1`,
  },
  {
    name: "reversals-within-original",
    description:
      "every REVERSAL reverses a reversible entry of its owner and app, with the opposite sign, and an entry's reversals add up to at most its amount",
    offenders: sql`select 'entry ' || coalesce(o.id::text, r.reverses::text) || ': ' ||
                          case when o.id is null then 'reversed but missing'
                               else 'reversals of ' || sum(r.amount) || ' for an entry of ' || o.amount end as example
                   from ledger_entries r
                   left join ledger_entries o on o.id = r.reverses
                   where r.operation = 'REVERSAL'
                   group by r.reverses, o.id, o.amount, o.owner_id, o.app, o.operation
                   having o.id is null or bool_or(r.owner_id <> o.owner_id or r.app <> o.app or sign(r.amount) = sign(o.amount))
                       or abs(sum(r.amount)) > abs(o.amount) or o.amount = 0
                       or o.operation in ('EXPIRY', 'HOLD', 'HOLD_RELEASE', 'HOLD_EXPIRY', 'REVERSAL', 'TRANSFER_OUT',
                                          'TRANSFER_IN', 'SUSPENSION', 'REINSTATEMENT')
                   union all
                   select 'entry ' || id || ': ' || operation || ' names a reversed entry' from ledger_entries
                   where (reverses is not null) <> (operation = 'REVERSAL')`,
  },
  {
    name: "reversals-return-to-source",
    description:
      "a debit's reversals give credits back only to the grants it spent, never more to one than it took; a credit's reversal takes from that credit's own grant if it opened one, from no grant otherwise",
    offenders: sql`select r.owner_id || ' #' || r.sequence || ' (reversing entry ' || r.reverses || '): ' ||
                          case when o.amount < 0 then 'gave back ' || -sum(a.amount) || ' to grant #' || a.grant_sequence
                                    || '.' || a.grant_part || ', which it took ' || coalesce(min(t.taken), 0) || ' from'
                               else 'took ' || sum(a.amount) || ' from grant #' || a.grant_sequence || '.' || a.grant_part end as example
                   from ledger_entries r
                   join ledger_entries o on o.id = r.reverses
                   join ledger_allocations a on a.owner_id = r.owner_id and a.sequence = r.sequence
                   left join lateral (select sum(x.amount) as taken from ledger_allocations x
                                      where x.owner_id = o.owner_id and x.sequence = o.sequence
                                        and x.grant_sequence = a.grant_sequence and x.grant_part = a.grant_part) t on true
                   where r.operation = 'REVERSAL'
                   group by r.owner_id, r.sequence, r.reverses, o.amount, o.sequence, o.expires_at, a.grant_sequence, a.grant_part
                   having (o.amount < 0 and (bool_or(a.amount > 0) or coalesce(min(t.taken), 0) < -sum(a.amount)))
                       or (o.amount > 0 and (o.expires_at is null or a.grant_sequence <> o.sequence or a.grant_part <> 0
                                             or bool_or(a.amount < 0)))
                   union all
                   select o.owner_id || ' grant #' || a.grant_sequence || '.' || a.grant_part || ': reversals of entry ' || o.id
                          || ' gave back ' || -sum(a.amount) || ', it took ' || coalesce(min(t.taken), 0)
                   from ledger_entries r
                   join ledger_entries o on o.id = r.reverses
                   join ledger_allocations a on a.owner_id = r.owner_id and a.sequence = r.sequence and a.amount < 0
                   left join lateral (select sum(x.amount) as taken from ledger_allocations x
                                      where x.owner_id = o.owner_id and x.sequence = o.sequence
                                        and x.grant_sequence = a.grant_sequence and x.grant_part = a.grant_part) t on true
                   where r.operation = 'REVERSAL'
                   group by o.owner_id, o.id, a.grant_sequence, a.grant_part
                   having -sum(a.amount) > coalesce(min(t.taken), 0)
                   union all
                   select r.owner_id || ' #' || r.sequence || ': reversal of an expiring credit took ' || coalesce(sum(a.amount), 0)
                          || ' of ' || -r.amount || ' from its grant'
                   from ledger_entries r
                   join ledger_entries o on o.id = r.reverses and o.amount > 0 and o.expires_at is not null
                   left join ledger_allocations a on a.owner_id = r.owner_id and a.sequence = r.sequence
                   where r.operation = 'REVERSAL'
                   group by r.owner_id, r.sequence, r.amount
                   having coalesce(sum(a.amount), 0) <> -r.amount`,
  },
  {
    name: "holds-within-grants",
    description: "the active holds' draws on a grant add up to no more than its remainder",
    offenders: sql`select g.owner_id || ' grant #' || g.sequence || '.' || g.part || ': remaining ' || g.remaining
                          || ', active holds hold ' || d.held as example
                   from (select h.owner_id, (w->>0)::bigint as sequence, (w->>1)::int as part, sum((w->>2)::bigint) as held
                         from ledger_holds h, jsonb_array_elements(h.draws) w
                         where h.status = 'active'
                         group by 1, 2, 3) d
                   left join ledger_grants g on g.owner_id = d.owner_id and g.sequence = d.sequence and g.part = d.part
                   where g.owner_id is null or d.held > g.remaining`,
  },
  {
    name: "transfer-pairs",
    description:
      "every TRANSFER_OUT has one TRANSFER_IN of the same app and instant for the opposite amount on its counterparty, naming it back, and the receiver's grants carry exactly the expiring credits the sender spent, by expiry",
    offenders: sql`select o.owner_id || ' #' || o.sequence || ': TRANSFER_OUT of ' || o.amount || ' has '
                          || count(i.id) || ' matching TRANSFER_IN' as example
                   from ledger_entries o
                   left join ledger_entries i on i.operation = 'TRANSFER_IN' and i.app = o.app
                        and i.owner_id = o.counterparty_owner_id and i.counterparty_owner_id = o.owner_id
                        and i.amount = -o.amount and i.created_at = o.created_at and i.nonce = 'transfer-in ' || o.nonce
                   where o.operation = 'TRANSFER_OUT'
                   group by o.owner_id, o.sequence, o.amount having count(i.id) <> 1
                   union all
                   select i.owner_id || ' #' || i.sequence || ': TRANSFER_IN without its TRANSFER_OUT'
                   from ledger_entries i
                   where i.operation = 'TRANSFER_IN' and not exists (
                     select 1 from ledger_entries o where o.operation = 'TRANSFER_OUT' and o.app = i.app
                       and i.nonce = 'transfer-in ' || o.nonce)
                   union all
                   select o.owner_id || ' #' || o.sequence || ': expiring credits sent and received differ'
                   from ledger_entries o
                   join ledger_entries i on i.operation = 'TRANSFER_IN' and i.app = o.app and i.nonce = 'transfer-in ' || o.nonce
                   where o.operation = 'TRANSFER_OUT'
                     and exists (
                       ((select g.expires_at, sum(a.amount) from ledger_allocations a
                           join ledger_grants g on g.owner_id = a.owner_id and g.sequence = a.grant_sequence and g.part = a.grant_part
                           where a.owner_id = o.owner_id and a.sequence = o.sequence group by g.expires_at)
                        except
                        (select expires_at, sum(amount) from ledger_grants
                           where owner_id = i.owner_id and sequence = i.sequence group by expires_at))
                       union all
                       ((select expires_at, sum(amount) from ledger_grants
                           where owner_id = i.owner_id and sequence = i.sequence group by expires_at)
                        except
                        (select g.expires_at, sum(a.amount) from ledger_allocations a
                           join ledger_grants g on g.owner_id = a.owner_id and g.sequence = a.grant_sequence and g.part = a.grant_part
                           where a.owner_id = o.owner_id and a.sequence = o.sequence group by g.expires_at)))`,
  },
  {
    name: "suspension-windows",
    description:
      "an owner's status is what its newest SUSPENSION or REINSTATEMENT says; the two alternate; between a suspension and its reinstatement only releases, expiries and reversals are written",
    offenders: sql`with marked as (
                     select e.owner_id, e.sequence, e.operation,
                            (select s.operation from ledger_entries s
                             where s.owner_id = e.owner_id and s.sequence < e.sequence
                               and s.operation in ('SUSPENSION', 'REINSTATEMENT')
                             order by s.sequence desc limit 1) as last_status
                     from ledger_entries e
                     where exists (select 1 from ledger_entries z where z.owner_id = e.owner_id and z.operation = 'SUSPENSION'))
                   select owner_id || ' #' || sequence || ': ' || operation || ' while suspended' as example
                   from marked
                   where last_status = 'SUSPENSION'
                     and operation not in ('EXPIRY', 'HOLD_RELEASE', 'HOLD_EXPIRY', 'REVERSAL', 'REINSTATEMENT')
                   union all
                   select owner_id || ' #' || sequence || ': ' || operation || ' after ' || coalesce(last_status, 'nothing')
                   from marked
                   where (operation = 'SUSPENSION' and last_status = 'SUSPENSION')
                      or (operation = 'REINSTATEMENT' and last_status is distinct from 'SUSPENSION')
                   union all
                   select o.owner_id || ': status ' || o.status || ', newest status entry '
                          || coalesce(s.operation, 'none')
                   from ledger_owners o
                   left join lateral (select operation from ledger_entries s
                                      where s.owner_id = o.owner_id and s.operation in ('SUSPENSION', 'REINSTATEMENT')
                                      order by s.sequence desc limit 1) s on true
                   where o.status <> case when s.operation = 'SUSPENSION' then 'suspended' else 'active' end`,
  },
  // The outbox. Retention may have pruned delivered events that occurred before pruned_before; every
  // entry since has its events. Holds made before the events migration (backfilled_through) have none.
  {
    name: "events-gapless",
    description:
      "event positions run without a gap from the oldest kept to the counter's last, each event id once",
    offenders: sql`select 'positions ' || coalesce(min(position), 0) || '..' || coalesce(max(position), 0) || ': ' ||
                          count(*) || ' events, ' || count(distinct id) || ' ids, counter at ' || (select last_position from ledger_event_counter) as example
                   from ledger_events
                   having count(*) > 0 and (count(*) <> max(position) - min(position) + 1
                                            or max(position) <> (select last_position from ledger_event_counter)
                                            or count(distinct id) <> count(*))
                       or count(*) = 0 and (select last_position from ledger_event_counter) < 0`,
  },
  {
    name: "event-per-entry",
    description:
      "every entry has exactly one entry.created event (but for what retention pruned), none twice",
    offenders: sql`select 'entry ' || e.id || ' (' || e.owner_id || ' #' || e.sequence || '): ' || count(v.position) || ' entry.created events' as example
                   from ledger_entries e
                   left join ledger_events v on v.entry_id = e.id and v.type = 'entry.created'
                   group by e.id, e.owner_id, e.sequence, e.created_at
                   having count(v.position) > 1
                       or count(v.position) = 0
                          and e.created_at >= coalesce((select pruned_before from ledger_event_retention), '-infinity')`,
  },
  {
    name: "events-match-entries",
    description:
      "every event is about an entry that exists, with its app, owner, sequence and time, and entry.created carries its figures",
    offenders: sql`select 'event ' || v.position || ' (' || v.type || '): ' ||
                          case when e.id is null then 'entry ' || v.entry_id || ' does not exist'
                               else 'differs from entry ' || e.id end as example
                   from ledger_events v left join ledger_entries e on e.id = v.entry_id
                   where e.id is null or v.app <> e.app or v.owner_id <> e.owner_id or v.sequence <> e.sequence
                      or v.occurred_at <> e.created_at
                      or v.type = 'entry.created' and (
                           (v.data->>'amount')::bigint is distinct from e.amount
                        or (v.data->>'balance_after')::bigint is distinct from e.balance_after
                        or (v.data->>'balance')::bigint is distinct from e.balance_after
                        or (v.data->>'held')::bigint is distinct from e.held_after
                        or (v.data->>'available')::bigint is distinct from e.balance_after - e.held_after
                        or v.data->>'operation' is distinct from e.operation
                        or v.data->>'nonce' is distinct from e.nonce)`,
  },
  {
    name: "hold-events-match-entries",
    description:
      "every hold entry since events began has exactly one hold event of its kind, and every hold event has a hold entry",
    offenders: sql`select 'entry ' || e.id || ' (' || e.operation || ', hold ' || e.hold_id || '): ' ||
                          count(v.position) || ' ' || t.type || ' events, ' || count(w.position) || ' of another kind' as example
                   from ledger_entries e
                   cross join lateral (select case e.operation when 'HOLD' then 'hold.created'
                                                               when 'HOLD_RELEASE' then 'hold.released'
                                                               when 'HOLD_EXPIRY' then 'hold.expired'
                                                               else 'hold.captured' end as type) t
                   left join ledger_events v on v.entry_id = e.id and v.type = t.type and v.data->'hold'->>'id' = e.hold_id
                   left join ledger_events w on w.entry_id = e.id and w.type like 'hold.%' and w.type <> t.type
                   where e.hold_id is not null and e.id > (select backfilled_through from ledger_event_counter)
                   group by e.id, e.operation, e.hold_id, e.created_at, t.type
                   having count(w.position) > 0 or count(v.position) > 1
                       or count(v.position) = 0
                          and e.created_at >= coalesce((select pruned_before from ledger_event_retention), '-infinity')
                   union all
                   select 'event ' || v.position || ' (' || v.type || '): entry ' || v.entry_id || ' has no hold'
                   from ledger_events v left join ledger_entries e on e.id = v.entry_id
                   where v.type like 'hold.%' and e.hold_id is null`,
  },
  {
    name: "events-in-owner-order",
    description: "each owner's entry.created events have positions in its sequence order",
    offenders: sql`select owner_id || ' #' || sequence || ' at position ' || position || ', after #' || prev_sequence || ' at ' || prev_position as example
                   from (select owner_id, sequence, position,
                                lag(sequence) over w as prev_sequence, lag(position) over w as prev_position
                         from ledger_events where type = 'entry.created'
                         window w as (partition by owner_id order by position)) o
                   where sequence <= prev_sequence`,
  },
  {
    name: "events-append-only-triggers",
    description: "triggers refusing UPDATE and TRUNCATE are installed and enabled on the events",
    offenders: sql`select 'ledger_events: no enabled ' || t.ev || ' guard' as example
                   from (values ('UPDATE'), ('TRUNCATE')) t(ev)
                   where not exists (
                     select 1 from pg_trigger g
                     join pg_proc p on p.oid = g.tgfoid
                     where g.tgrelid = 'ledger_events'::regclass and g.tgenabled <> 'D' and p.proname = 'ledger_refuse_event_change'
                       and (g.tgtype & case t.ev when 'UPDATE' then 16 else 32 end) <> 0)`,
  },
  {
    name: "append-only-triggers",
    description:
      "triggers refusing UPDATE, DELETE and TRUNCATE are installed and enabled on entries, allocations and the postings view",
    offenders: sql`select t.tbl || ': no enabled ' || t.ev || ' guard' as example
                   from (values ('ledger_entries', 'UPDATE'), ('ledger_entries', 'DELETE'), ('ledger_entries', 'TRUNCATE'),
                                ('ledger_allocations', 'UPDATE'), ('ledger_allocations', 'DELETE'), ('ledger_allocations', 'TRUNCATE'),
                                ('ledger_postings', 'UPDATE'), ('ledger_postings', 'DELETE')) t(tbl, ev)
                   where not exists (
                     select 1 from pg_trigger g
                     join pg_proc p on p.oid = g.tgfoid
                     where g.tgrelid = t.tbl::regclass and g.tgenabled <> 'D' and p.proname = 'ledger_refuse_history_change'
                       and (g.tgtype & case t.ev when 'UPDATE' then 16 when 'DELETE' then 8 else 32 end) <> 0)`,
  },
];

class ProbeAccepted extends Error {}

async function requireSchema(db: LedgerDb): Promise<void> {
  const rows = await queryRows<{ missing: string | null }>(
    db,
    sql`select string_agg(t, ', ') as missing
        from unnest(array['ledger_entries', 'ledger_postings', 'ledger_owners', 'ledger_grants', 'ledger_allocations',
                          'ledger_holds', 'ledger_events']) t
        where to_regclass(t) is null`,
  );
  const missing = rows[0]?.missing;
  if (missing) {
    throw new Error(
      `this database has no ledger schema (missing ${missing}); start an app on it once to migrate it`,
    );
  }
}

/**
 * Tries an UPDATE and a DELETE on the oldest entry and posting, inside a transaction that is always
 * rolled back: the guard holds when the database refuses both. With no rows there is nothing to try,
 * and the trigger check above stands alone.
 */
async function probeAppendOnly(db: LedgerDb): Promise<CheckResult> {
  const probes: [string, SQL][] = [
    [
      "UPDATE ledger_entries",
      sql`update ledger_entries set amount = amount where id = (select min(id) from ledger_entries)`,
    ],
    [
      "DELETE FROM ledger_entries",
      sql`delete from ledger_entries where id = (select min(id) from ledger_entries)`,
    ],
    [
      "UPDATE ledger_postings",
      sql`update ledger_postings set amount = amount where entry_id = (select min(entry_id) from ledger_postings)`,
    ],
    [
      "DELETE FROM ledger_postings",
      sql`delete from ledger_postings where entry_id = (select min(entry_id) from ledger_postings)`,
    ],
  ];
  const accepted: string[] = [];
  const [any] = await queryRows<{ found: boolean }>(
    db,
    sql`select exists (select 1 from ledger_entries) as found`,
  );
  for (const [name, statement] of any?.found ? probes : []) {
    try {
      await db.transaction(async (tx) => {
        await tx.execute(statement);
        throw new ProbeAccepted(name);
      });
    } catch (error) {
      if (error instanceof ProbeAccepted) accepted.push(`${name} was accepted (and rolled back)`);
      else if (!/append-only/.test(errorText(error))) throw error;
    }
  }
  return {
    name: "append-only-refuses",
    description: "an UPDATE or DELETE on entries or postings is refused by the database",
    violations: accepted.length,
    examples: accepted,
  };
}

export function errorText(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++)
    parts.push(e.message);
  return parts.join(" / ");
}

/** Runs every check. Read-only: the probes roll back. */
export async function verifyLedger(db: LedgerDb): Promise<VerifyReport> {
  await requireSchema(db);
  const checks: CheckResult[] = [];
  for (const check of CHECKS) {
    const rows = await queryRows<{ example: string }>(db, check.offenders);
    checks.push({
      name: check.name,
      description: check.description,
      violations: rows.length,
      examples: rows.slice(0, EXAMPLES_MAX).map((r) => r.example),
    });
  }
  checks.push(await probeAppendOnly(db));
  return { ok: checks.every((c) => c.violations === 0), checks };
}

export interface BalanceDifference {
  owner_id: string;
  stored: { balance: number; last_sequence: number; held: number } | null;
  computed: { balance: number; last_sequence: number; held: number };
}

export interface GrantDifference {
  owner_id: string;
  sequence: number;
  part: number;
  stored: { remaining: number; expired_sequence: number | null } | null;
  computed: { remaining: number; expired_sequence: number | null };
}

export interface RebuildReport {
  differences: BalanceDifference[];
  grantDifferences: GrantDifference[];
  repaired: boolean;
}

// Each grant as the entries and allocations say it is: its amount less what allocations took (and gave
// back), marked with the newest EXPIRY entry that took from it. The grants are the stored ones (a
// TRANSFER_IN's parts come from the sender's allocations, recorded when it was written) plus one for any
// credit with an expiry whose grant row is missing.
const COMPUTED_GRANTS = sql`
  select c.owner_id, c.sequence, c.part, c.app, c.amount, c.expires_at, c.created_at,
         c.amount - coalesce(sum(a.amount), 0) as remaining,
         max(a.sequence) filter (where x.operation = 'EXPIRY') as expired_sequence
  from (select owner_id, sequence, part, app, amount, expires_at, created_at from ledger_grants
        union all
        select e.owner_id, e.sequence, 0, e.app, e.amount, e.expires_at, e.created_at from ledger_entries e
        where e.expires_at is not null and e.amount > 0 and e.operation not in ('EXPIRY', 'TRANSFER_IN')
          and not exists (select 1 from ledger_grants g where g.owner_id = e.owner_id and g.sequence = e.sequence)) c
  left join ledger_allocations a
    on a.owner_id = c.owner_id and a.grant_sequence = c.sequence and a.grant_part = c.part
  left join ledger_entries x on x.owner_id = a.owner_id and x.sequence = a.sequence
  group by c.owner_id, c.sequence, c.part, c.app, c.amount, c.expires_at, c.created_at`;

async function grantDifferences(tx: LedgerDb): Promise<GrantDifference[]> {
  const rows = await queryRows<{
    owner_id: string;
    sequence: string;
    part: number;
    stored_remaining: string | null;
    stored_expired: string | null;
    computed_remaining: string;
    computed_expired: string | null;
  }>(
    tx,
    sql`select c.owner_id, c.sequence::text as sequence, c.part, g.remaining::text as stored_remaining,
               g.expired_sequence::text as stored_expired, c.remaining::text as computed_remaining,
               c.expired_sequence::text as computed_expired
        from (${COMPUTED_GRANTS}) c
        left join ledger_grants g on g.owner_id = c.owner_id and g.sequence = c.sequence and g.part = c.part
        where g.owner_id is null or g.remaining <> c.remaining
           or g.expired_sequence is distinct from c.expired_sequence
        order by 1, 2, 3`,
  );
  const num = (v: string | null) => (v === null ? null : Number(v));
  return rows.map((r) => ({
    owner_id: r.owner_id,
    sequence: Number(r.sequence),
    part: Number(r.part),
    stored:
      r.stored_remaining === null
        ? null
        : { remaining: Number(r.stored_remaining), expired_sequence: num(r.stored_expired) },
    computed: { remaining: Number(r.computed_remaining), expired_sequence: num(r.computed_expired) },
  }));
}

/**
 * Recomputes every owner's balance from the entries and compares it with the projection. With
 * repair, rewrites the rows that differ, in one transaction that holds writers off the balances
 * table meanwhile (they lock their owner's balance row first, so none can commit in between).
 */
export async function rebuildBalances(db: LedgerDb, opts: { repair: boolean }): Promise<RebuildReport> {
  await requireSchema(db);
  return db.transaction(async (tx) => {
    if (opts.repair) {
      await tx.execute(sql`lock table ledger_owners in exclusive mode`);
      await tx.execute(sql`lock table ledger_grants in exclusive mode`);
    }
    const grants = await grantDifferences(tx);
    if (opts.repair && grants.length > 0) {
      await tx.execute(sql`
        insert into ledger_grants (owner_id, sequence, part, app, amount, remaining, expires_at, created_at, expired_sequence)
        select owner_id, sequence, part, app, amount, remaining, expires_at, created_at, expired_sequence
        from (${COMPUTED_GRANTS}) c
        on conflict (owner_id, sequence, part) do update
          set remaining = excluded.remaining, expired_sequence = excluded.expired_sequence`);
    }
    const rows = await queryRows<{
      owner_id: string;
      stored_balance: string | null;
      stored_last: string | null;
      stored_held: string | null;
      computed_balance: string;
      computed_last: string;
      computed_held: string;
    }>(
      tx,
      sql`select coalesce(b.owner_id, e.owner_id) as owner_id,
                 b.balance::text as stored_balance, b.last_sequence::text as stored_last, b.held::text as stored_held,
                 coalesce(e.total, 0)::text as computed_balance, coalesce(e.head, 0)::text as computed_last,
                 coalesce(h.total, 0)::text as computed_held
          from ledger_owners b
          full join (select owner_id, sum(amount) as total, max(sequence) as head
                     from ledger_entries group by owner_id) e using (owner_id)
          left join (select owner_id, sum(amount) as total from ledger_holds where status = 'active'
                     group by owner_id) h on h.owner_id = coalesce(b.owner_id, e.owner_id)
          where b.owner_id is null
             or b.balance <> coalesce(e.total, 0)
             or b.last_sequence <> coalesce(e.head, 0)
             or b.held <> coalesce(h.total, 0)
          order by 1`,
    );
    const differences: BalanceDifference[] = rows.map((r) => ({
      owner_id: r.owner_id,
      stored:
        r.stored_balance === null
          ? null
          : {
              balance: Number(r.stored_balance),
              last_sequence: Number(r.stored_last),
              held: Number(r.stored_held),
            },
      computed: {
        balance: Number(r.computed_balance),
        last_sequence: Number(r.computed_last),
        held: Number(r.computed_held),
      },
    }));
    if (opts.repair && differences.length > 0) {
      // The differences were computed under the table lock: write them as they are, without
      // aggregating every entry a second time.
      await tx.execute(sql`
        insert into ledger_owners (owner_id, balance, held, last_sequence, updated_at)
        select owner_id, balance, held, last_sequence, now()
        from unnest(${sql.param(rows.map((r) => r.owner_id))}::text[],
                    ${sql.param(rows.map((r) => r.computed_balance))}::bigint[],
                    ${sql.param(rows.map((r) => r.computed_held))}::bigint[],
                    ${sql.param(rows.map((r) => r.computed_last))}::bigint[]) as d(owner_id, balance, held, last_sequence)
        on conflict (owner_id) do update
          set balance = excluded.balance, held = excluded.held, last_sequence = excluded.last_sequence,
              updated_at = excluded.updated_at`);
    }
    return {
      differences,
      grantDifferences: grants,
      repaired: opts.repair && (differences.length > 0 || grants.length > 0),
    };
  });
}
