/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import type { Child } from "hono/jsx";
import type { SessionAuth } from "../session.js";

export interface Viewer {
  auth: SessionAuth;
  csrf: string;
}

export function Layout(props: {
  title: string;
  viewer?: Viewer | undefined;
  ownerId?: string | undefined;
  head?: Child;
  children?: Child;
}) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · Support console`}</title>
        <link rel="stylesheet" href="/assets/console.css" />
        {props.head}
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="top">
          <a class="brand" href="/">
            Support console
          </a>
          {props.viewer ? (
            <>
              <form class="find" method="get" action="/owners" role="search">
                <label for="find-owner">Owner id</label>
                <input
                  id="find-owner"
                  name="owner_id"
                  required
                  maxlength={128}
                  autocomplete="off"
                  spellcheck={false}
                  value={props.ownerId ?? ""}
                />
                <button type="submit">Find</button>
              </form>
              <Who viewer={props.viewer} />
            </>
          ) : null}
        </header>
        <main id="main">{props.children}</main>
      </body>
    </html>
  );
}

function Who({ viewer }: { viewer: Viewer }) {
  const { auth } = viewer;
  return (
    <div class="who">
      {auth.mode === "off" ? (
        <p class="warn" data-testid="auth-off">
          LEDGER_AUTH=off: signed in without a key. Anyone who can reach the ledger can do this.
        </p>
      ) : (
        <p data-testid="who">
          Key <code>{auth.keyId}</code>
          {auth.name ? ` (${auth.name})` : ""} of <strong>{auth.app}</strong>, scopes{" "}
          <span data-testid="scopes">{auth.scopes.join(", ")}</span>
          {auth.scopes.includes("admin") ? "" : ": read only"}
        </p>
      )}
      <form method="post" action="/sign-out">
        <input type="hidden" name="csrf" value={viewer.csrf} />
        <button type="submit" class="link">
          Sign out
        </button>
      </form>
    </div>
  );
}

/** A readable failure, with the ledger's code. */
export function ErrorBox(props: { title: string; code: string; message: string; children?: Child }) {
  return (
    <section class="error" role="alert" data-testid="error">
      <h2>{props.title}</h2>
      <p>
        <code data-testid="error-code">{props.code}</code> {props.message}
      </p>
      {props.children}
    </section>
  );
}

export function ErrorPage(props: {
  title: string;
  code: string;
  message: string;
  viewer?: Viewer | undefined;
  back?: string | undefined;
}) {
  return (
    <Layout title={props.title} viewer={props.viewer}>
      <ErrorBox title={props.title} code={props.code} message={props.message}>
        {props.back ? (
          <p>
            <a href={props.back}>Back</a>
          </p>
        ) : null}
      </ErrorBox>
    </Layout>
  );
}
