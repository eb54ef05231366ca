/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import { randomUUID } from "node:crypto";
import type { Balance, Hold as ClientHold, LedgerPaths } from "@ledger/client";
import { whyNotReversible } from "@ledger/core";
import type { Ledger } from "../ledgers.js";
import { type Entry, formatDate, formatInstant, signed, toLocalInput } from "../format.js";
import { APP_NAMES, mayAct, mayRelease, type AppName } from "../session.js";
import { ErrorBox, Layout, type Viewer } from "./layout.js";

export type Hold = ClientHold<LedgerPaths>;
export type Summary = Awaited<ReturnType<Ledger["summary"]>>;
export type Failure = { code: string; message: string };

export function SignInPage(props: { error?: Failure | undefined; app?: AppName | undefined }) {
  return (
    <Layout title="Sign in">
      <section class="card narrow">
        <h1>Sign in</h1>
        <p>
          Paste an API key made with <code>pnpm ledger keys create</code> and pick its app. A key with the{" "}
          <code>read</code> scope shows owners; one with <code>admin</code> may also reverse, release, suspend
          and reinstate. If the ledger runs with <code>LEDGER_AUTH=off</code>, leave the key empty.
        </p>
        {props.error ? (
          <ErrorBox title="Not signed in" code={props.error.code} message={props.error.message} />
        ) : null}
        <form method="post" action="/sign-in" class="stack">
          <fieldset class="choice" aria-describedby="app-help">
            <legend>The key's app</legend>
            {APP_NAMES.map((a) => (
              <label class="check" for={`sign-in-${a}`}>
                <input
                  id={`sign-in-${a}`}
                  type="radio"
                  name="app"
                  value={a}
                  required
                  checked={props.app === a}
                />{" "}
                {a}
              </label>
            ))}
          </fieldset>
          <p id="app-help" class="hint">
            The key is checked by that app alone: a key tried at the wrong app counts as a failed sign-in
            there.
          </p>
          <label for="api-key">API key</label>
          <input
            id="api-key"
            name="api_key"
            type="password"
            autocomplete="off"
            maxlength={200}
            spellcheck={false}
            aria-describedby="api-key-help"
          />
          <p id="api-key-help" class="hint">
            Kept in a sealed, HttpOnly cookie for 12 hours; never shown again.
          </p>
          <button type="submit">Sign in</button>
        </form>
      </section>
    </Layout>
  );
}

export function HomePage(props: { viewer: Viewer; error?: Failure | undefined }) {
  return (
    <Layout title="Find an owner" viewer={props.viewer}>
      <section class="card narrow">
        <h1>Find an owner</h1>
        {props.error ? (
          <ErrorBox title="Not an owner id" code={props.error.code} message={props.error.message} />
        ) : null}
        <form method="get" action="/owners" class="stack" role="search">
          <label for="owner-id">Owner id</label>
          <input
            id="owner-id"
            name="owner_id"
            required
            maxlength={128}
            autocomplete="off"
            spellcheck={false}
          />
          <button type="submit">Open</button>
        </form>
      </section>
    </Layout>
  );
}

export interface EntryFilter {
  app?: AppName | undefined;
  operation?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
}

export interface ChartData {
  points: { t: number; balance: number; kind: "entry" | "expiry" | "reversal" }[];
  /** The range held more entries than are plotted. */
  capped: boolean;
  capMax: number;
}

export interface OwnerPageProps {
  viewer: Viewer;
  ownerId: string;
  balance: Balance<LedgerPaths>;
  holds: { app: AppName; holds: Hold[] }[];
  holdsError?: Failure | undefined;
  /** Undefined on an older page (a cursor): the chart is drawn on the first page only. */
  chart: ChartData | Failure | undefined;
  explain: Summary | Failure;
  explainInput: { from?: string | undefined; to?: string | undefined };
  entries: Entry[];
  nextCursor: string | null;
  cursor?: string | undefined;
  filter: EntryFilter;
  notice?: string | undefined;
}

/** A section's read that failed, shown in place of the section. */
export function isFailure(x: unknown): x is Failure {
  return typeof x === "object" && x !== null && "code" in x && "message" in x;
}

function query(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

export function ownerPath(ownerId: string, rest = ""): string {
  return `/owners/${encodeURIComponent(ownerId)}${rest}`;
}

export function OwnerPage(props: OwnerPageProps) {
  const { viewer, ownerId, balance } = props;
  const acting = mayAct(viewer.auth);
  return (
    <Layout
      title={ownerId}
      viewer={viewer}
      ownerId={ownerId}
      head={
        <>
          <link rel="stylesheet" href="/assets/uplot.min.css" />
          <script src="/assets/uplot.iife.min.js" defer></script>
          <script src="/assets/chart.js" defer></script>
        </>
      }
    >
      <h1>
        Owner <code data-testid="owner-id">{ownerId}</code>
      </h1>
      {props.notice ? (
        <p class="notice" role="status" data-testid="notice">
          {props.notice}
        </p>
      ) : null}
      <section class="card" aria-labelledby="balance-h">
        <h2 id="balance-h">Balance</h2>
        <dl class="figures">
          <div>
            <dt>Balance</dt>
            <dd data-testid="balance">{balance.balance}</dd>
          </div>
          <div>
            <dt>Available</dt>
            <dd data-testid="available">{balance.available}</dd>
          </div>
          <div>
            <dt>Held</dt>
            <dd data-testid="held">{balance.held}</dd>
          </div>
          <div>
            <dt>Status</dt>
            <dd data-testid="status" class={balance.status === "suspended" ? "bad" : ""}>
              {balance.status}
            </dd>
          </div>
        </dl>
        {acting ? <StatusAction {...props} /> : null}
      </section>

      <div class="two">
        <section class="card" aria-labelledby="expiring-h">
          <h2 id="expiring-h">Credits that expire</h2>
          {balance.expiring.length === 0 ? (
            <p>No credits with an expiry.</p>
          ) : (
            <table data-testid="expiring">
              <caption class="sr-only">Unexpired grants, soonest first</caption>
              <thead>
                <tr>
                  <th scope="col">Expires</th>
                  <th scope="col" class="num">
                    Credits
                  </th>
                </tr>
              </thead>
              <tbody>
                {balance.expiring.map((g) => (
                  <tr>
                    <td>{formatInstant(g.expires_at)}</td>
                    <td class="num">{g.amount}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <HoldsSection {...props} />
      </div>

      <ChartSection {...props} />
      <ExplainSection {...props} />
      <EntriesSection {...props} />
      <ExportSection {...props} />
    </Layout>
  );
}

function Hidden(props: { viewer: Viewer }) {
  return (
    <>
      <input type="hidden" name="csrf" value={props.viewer.csrf} />
      {/* Made once per rendering of the form: a second submit of it is the ledger's replay, not a second write. */}
      <input type="hidden" name="nonce" value={randomUUID()} />
    </>
  );
}

/** Reason and confirmation, shared by every action form. */
function ReasonConfirm(props: { id: string; recorded: boolean }) {
  return (
    <>
      <label for={`${props.id}-reason`}>Reason (required)</label>
      <textarea id={`${props.id}-reason`} name="reason" required maxlength={500} rows={2}></textarea>
      {props.recorded ? null : (
        <p class="hint">The ledger keeps no reason for this action; the console writes it to its log.</p>
      )}
      <label class="check">
        <input type="checkbox" name="confirm" value="yes" required /> I confirm
      </label>
    </>
  );
}

function StatusAction(props: OwnerPageProps) {
  const suspended = props.balance.status === "suspended";
  const verb = suspended ? "Reinstate" : "Suspend";
  const path = ownerPath(props.ownerId, suspended ? "/reinstatement" : "/suspension");
  return (
    <details class="action">
      <summary>{verb} this owner…</summary>
      <form method="post" action={path} class="stack" data-testid="status-form">
        <Hidden viewer={props.viewer} />
        <p>
          {suspended
            ? "Every app will accept this owner's writes again."
            : "Every app will refuse this owner's writes until reinstated; reads and reversals still work."}
        </p>
        <ReasonConfirm id="status" recorded />
        <button type="submit" class="danger">
          {verb}
        </button>
      </form>
    </details>
  );
}

function HoldsSection(props: OwnerPageProps) {
  const { viewer } = props;
  const releasing = mayRelease(viewer.auth);
  const all = props.holds.flatMap((h) => h.holds);
  return (
    <section class="card" aria-labelledby="holds-h">
      <h2 id="holds-h">Active holds</h2>
      {viewer.auth.mode === "required" ? (
        <p class="hint">Holds of {viewer.auth.app} (an app sees only its own holds).</p>
      ) : null}
      {props.holdsError ? (
        <ErrorBox title="Holds not read" code={props.holdsError.code} message={props.holdsError.message} />
      ) : null}
      {all.length === 0 ? (
        <p>No active holds.</p>
      ) : (
        <div class="scroll">
          <table data-testid="holds">
            <thead>
              <tr>
                <th scope="col">Hold</th>
                <th scope="col">App</th>
                <th scope="col">Operation</th>
                <th scope="col" class="num">
                  Credits
                </th>
                <th scope="col">Expires</th>
                {releasing ? <th scope="col">Action</th> : null}
              </tr>
            </thead>
            <tbody>
              {all.map((h) => (
                <tr>
                  <td>
                    <code class="short" title={h.id}>
                      {h.id}
                    </code>
                  </td>
                  <td>{h.app}</td>
                  <td>{h.operation}</td>
                  <td class="num">{h.amount}</td>
                  <td>{formatInstant(h.expires_at)}</td>
                  {releasing ? (
                    <td>
                      <details class="action">
                        <summary>Release…</summary>
                        <form
                          method="post"
                          action={ownerPath(props.ownerId, `/holds/${encodeURIComponent(h.id)}/release`)}
                          class="stack"
                        >
                          <Hidden viewer={viewer} />
                          <input type="hidden" name="app" value={h.app} />
                          <ReasonConfirm id={`release-${h.id}`} recorded={false} />
                          <button type="submit">Release {h.amount}</button>
                        </form>
                      </details>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {viewer.auth.mode === "required" && viewer.auth.scopes.includes("admin") && !releasing ? (
        <p class="hint">Releasing a hold needs the key's write scope too.</p>
      ) : null}
    </section>
  );
}

function ChartSection(props: OwnerPageProps) {
  const { chart } = props;
  return (
    <section class="card" aria-labelledby="chart-h">
      <h2 id="chart-h">Balance over time</h2>
      {chart === undefined ? (
        <p data-testid="chart-skipped">
          The chart is on the{" "}
          <a
            href={ownerPath(
              props.ownerId,
              query({
                ...props.filter,
                explain_from: props.explainInput.from,
                explain_to: props.explainInput.to,
              }),
            )}
          >
            first page
          </a>
          : an older page of entries does not read the range again to draw it.
        </p>
      ) : isFailure(chart) ? (
        <ErrorBox title="Chart not drawn" code={chart.code} message={chart.message} />
      ) : chart.points.length === 0 ? (
        <p>No entries in this range.</p>
      ) : (
        <>
          <p class="hint" data-testid="chart-caption">
            The running balance after each entry ({chart.points.length} points
            {props.filter.from || props.filter.to ? ", in the entries' date range" : ""}), times in UTC;
            expiries of credits and reversals are marked.
            {chart.capped ? ` Only the newest ${chart.capMax} entries of the range are plotted.` : ""}
          </p>
          <div id="chart" class="chart" data-testid="chart" role="img" aria-label="Balance over time"></div>
          <script
            type="application/json"
            id="chart-data"
            // JSON in a data block: `<` escaped so no value can close the script element.
            dangerouslySetInnerHTML={{ __html: JSON.stringify(chart.points).replaceAll("<", "\\u003c") }}
          ></script>
        </>
      )}
    </section>
  );
}

export function ExplainSection(props: OwnerPageProps) {
  const { explain, explainInput, filter, ownerId } = props;
  // The ledger promises the groups add up to its `change`; the total shows the ledger's figure, and a
  // sum that differs is said out loud rather than hidden.
  const groupsSum = isFailure(explain) ? 0 : explain.groups.reduce((n, g) => n + g.amount, 0);
  return (
    <section class="card" aria-labelledby="explain-h" data-testid="explain">
      <h2 id="explain-h">Explain</h2>
      <form method="get" action={ownerPath(ownerId)} class="inline" data-testid="explain-form">
        {(["app", "operation", "from", "to"] as const).map((k) =>
          filter[k] ? <input type="hidden" name={k} value={filter[k]} /> : null,
        )}
        <div>
          <label for="explain-from">From (UTC)</label>
          <input
            id="explain-from"
            name="explain_from"
            type="datetime-local"
            step={1}
            value={toLocalInput(isFailure(explain) ? explainInput.from : explain.from)}
          />
        </div>
        <div>
          <label for="explain-to">To (UTC)</label>
          <input
            id="explain-to"
            name="explain_to"
            type="datetime-local"
            step={1}
            value={toLocalInput(isFailure(explain) ? explainInput.to : explain.to)}
          />
        </div>
        <button type="submit">Explain</button>
      </form>
      {isFailure(explain) ? (
        <ErrorBox title="Not explained" code={explain.code} message={explain.message} />
      ) : (
        <>
          <p class="sentence" data-testid="explain-sentence">
            From <strong data-testid="explain-balance-from">{explain.balance_from}</strong> on{" "}
            {formatDate(explain.from)} ({formatInstant(explain.from)}) to{" "}
            <strong data-testid="explain-balance-to">{explain.balance_to}</strong> on {formatDate(explain.to)}{" "}
            ({formatInstant(explain.to)}):{" "}
            <strong data-testid="explain-change">{signed(explain.change)}</strong>.
          </p>
          {explain.groups.length === 0 ? (
            <p>No entries between these instants.</p>
          ) : (
            <div class="scroll">
              <table data-testid="explain-groups">
                <caption class="sr-only">
                  Entries between the two instants, summed by app and operation
                </caption>
                <thead>
                  <tr>
                    <th scope="col">App</th>
                    <th scope="col">Operation</th>
                    <th scope="col" class="num">
                      Entries
                    </th>
                    <th scope="col" class="num">
                      Credits
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {explain.groups.map((g) => (
                    <tr>
                      <td>{g.app}</td>
                      <td>{g.operation}</td>
                      <td class="num">{g.entries}</td>
                      <td class="num" data-testid="explain-amount">
                        {signed(g.amount)}
                      </td>
                    </tr>
                  ))}
                </tbody>
                <tfoot>
                  <tr>
                    <th scope="row" colspan={2}>
                      Total ({explain.balance_to} − {explain.balance_from})
                    </th>
                    <td class="num">{explain.groups.reduce((n, g) => n + g.entries, 0)}</td>
                    <td class="num" data-testid="explain-total">
                      {signed(explain.change)}
                    </td>
                  </tr>
                </tfoot>
              </table>
            </div>
          )}
          {groupsSum !== explain.change ? (
            <p class="warn" role="alert" data-testid="explain-mismatch">
              The groups add up to {signed(groupsSum)}, not the ledger's change of {signed(explain.change)}.
              This should never happen: report it with this owner's id and the two instants.
            </p>
          ) : null}
        </>
      )}
    </section>
  );
}

/** The reversed entry, on the page that holds it when it is this one (entries are never far apart). */
function entryLink(ownerId: string, id: number): string {
  return `${ownerPath(ownerId)}#entry-${id}`;
}

function EntriesSection(props: OwnerPageProps) {
  const { viewer, ownerId, filter, entries, explainInput } = props;
  const acting = mayAct(viewer.auth);
  const keyApp = viewer.auth.mode === "required" ? viewer.auth.app : undefined;
  // Paging and filtering keep the Explain range that was picked (as typed: the default stays the default).
  const kept = { explain_from: explainInput.from, explain_to: explainInput.to };
  const base = { ...filter, ...kept };
  const firstPage = ownerPath(ownerId, query(base));
  return (
    <section class="card" aria-labelledby="entries-h">
      <h2 id="entries-h">Entries</h2>
      <form method="get" action={ownerPath(ownerId)} class="inline" data-testid="filter-form">
        {(["explain_from", "explain_to"] as const).map((k) =>
          kept[k] ? <input type="hidden" name={k} value={kept[k]} /> : null,
        )}
        <div>
          <label for="f-app">App</label>
          <select id="f-app" name="app">
            <option value="">every app</option>
            {APP_NAMES.map((a) => (
              <option value={a} selected={filter.app === a}>
                {a}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="f-operation">Operation</label>
          <input
            id="f-operation"
            name="operation"
            maxlength={64}
            placeholder="e.g. CREDIT_ADD"
            value={filter.operation ?? ""}
          />
        </div>
        <div>
          <label for="f-from">From (UTC)</label>
          <input id="f-from" name="from" type="datetime-local" step={1} value={toLocalInput(filter.from)} />
        </div>
        <div>
          <label for="f-to">To (UTC)</label>
          <input id="f-to" name="to" type="datetime-local" step={1} value={toLocalInput(filter.to)} />
        </div>
        <button type="submit">Filter</button>
        <a href={ownerPath(ownerId, query(kept))}>Clear</a>
      </form>
      {acting && keyApp ? (
        <p class="hint">
          Your key belongs to {keyApp}: entries written by another app show no action, because the ledger lets
          an app reverse only its own entries.
        </p>
      ) : null}
      {entries.length === 0 ? (
        <p>No entries{props.cursor ? " on this page" : " match"}.</p>
      ) : (
        <div class="scroll">
          <table class="entries" data-testid="entries">
            <caption class="sr-only">Entries, newest first</caption>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">When</th>
                <th scope="col">App</th>
                <th scope="col">Operation</th>
                <th scope="col" class="num">
                  Amount
                </th>
                <th scope="col" class="num">
                  Balance after
                </th>
                <th scope="col">Expires</th>
                <th scope="col">Hold</th>
                <th scope="col">Reversal</th>
                <th scope="col">Actor</th>
                <th scope="col">Reason</th>
                {acting ? <th scope="col">Action</th> : null}
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr id={`entry-${e.id}`} data-entry-id={String(e.id)} data-operation={e.operation}>
                  <td data-label="#">{e.id}</td>
                  <td data-label="When" class="when">
                    {formatInstant(e.created_at)}
                  </td>
                  <td data-label="App">{e.app}</td>
                  <td data-label="Operation">{e.operation}</td>
                  <td data-label="Amount" class="num">
                    {signed(e.amount)}
                  </td>
                  <td data-label="Balance after" class="num">
                    {e.balance_after}
                  </td>
                  <td data-label="Expires" class="when">
                    {formatInstant(e.expires_at)}
                  </td>
                  <td data-label="Hold">
                    {e.hold_id ? (
                      <code class="short" title={e.hold_id}>
                        {e.hold_id}
                      </code>
                    ) : null}
                  </td>
                  <td data-label="Reversal">
                    {e.reverses !== undefined ? (
                      <a href={entryLink(ownerId, e.reverses)}>reverses #{e.reverses}</a>
                    ) : null}
                    {e.reversed_amount ? <span>{e.reversed_amount} reversed</span> : null}
                    {e.counterparty_owner_id ? (
                      <a href={ownerPath(e.counterparty_owner_id)}>
                        {e.operation === "TRANSFER_OUT" ? "to " : "from "}
                        {e.counterparty_owner_id}
                      </a>
                    ) : null}
                  </td>
                  <td data-label="Actor">
                    {e.actor ? (
                      <code class="short" title={`API key ${e.actor}`}>
                        {e.actor}
                      </code>
                    ) : null}
                  </td>
                  <td data-label="Reason" class="reason">
                    {e.reason}
                  </td>
                  {acting ? (
                    <td data-label="Action">
                      <EntryAction {...props} entry={e} />
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav class="paging" aria-label="Entry pages">
        {props.cursor ? <a href={firstPage}>Newest</a> : null}
        {props.nextCursor ? (
          <a href={ownerPath(ownerId, query({ ...base, cursor: props.nextCursor }))} rel="next">
            Older entries
          </a>
        ) : null}
      </nav>
    </section>
  );
}

function EntryAction(props: OwnerPageProps & { entry: Entry }) {
  const { entry: e, viewer } = props;
  const left = Math.abs(e.amount) - (e.reversed_amount ?? 0);
  // The ledger's own rule (it refuses the rest with NOT_REVERSIBLE), not a copy of its list.
  if (whyNotReversible(e.operation, e.amount) !== null || left <= 0) return null;
  if (viewer.auth.mode === "required" && viewer.auth.app !== e.app) {
    return <span class="hint">{e.app}'s entry</span>;
  }
  return (
    <details class="action">
      <summary aria-label={`Reverse entry ${e.id}`}>Reverse…</summary>
      <form
        method="post"
        action={ownerPath(props.ownerId, `/entries/${e.id}/reversal`)}
        class="stack"
        data-testid={`reverse-${e.id}`}
      >
        <Hidden viewer={viewer} />
        <input type="hidden" name="app" value={e.app} />
        <label for={`rev-${e.id}-amount`}>Credits to give back (empty: all {left} left)</label>
        <input id={`rev-${e.id}-amount`} name="amount" type="number" min={1} max={left} step={1} />
        <ReasonConfirm id={`rev-${e.id}`} recorded />
        <button type="submit" class="danger">
          Reverse
        </button>
      </form>
    </details>
  );
}

function ExportSection(props: OwnerPageProps) {
  const { filter, ownerId } = props;
  return (
    <section class="card" aria-labelledby="export-h">
      <h2 id="export-h">Export a statement</h2>
      <form
        method="get"
        action={ownerPath(ownerId, "/statement.csv")}
        class="inline"
        data-testid="export-form"
      >
        <div>
          <label for="x-from">From (UTC)</label>
          <input id="x-from" name="from" type="datetime-local" step={1} value={toLocalInput(filter.from)} />
        </div>
        <div>
          <label for="x-to">To (UTC)</label>
          <input id="x-to" name="to" type="datetime-local" step={1} value={toLocalInput(filter.to)} />
        </div>
        <button type="submit">Download CSV</button>
      </form>
      <p class="hint">Every app's entries in the range, newest first, with the table's columns.</p>
    </section>
  );
}
