// notify.js: the browser client of the work-order notification service
// (protocol v1.1, docs/PROTOCOL.md). A dependency-free ES module.
//
//   import { NotifyClient } from "./notify.js";
//   const client = new NotifyClient("wss://abc.execute-api.eu-west-1.amazonaws.com/prod", {
//     token: () => fetch("/api/ws-token").then((r) => r.text()),
//   });
//   client.on("notification", (n) => console.log(n.title));
//   client.on("unread", (count) => (badge.textContent = count));
//   client.connect();
//
// Guarantees: after every (re)connect the client syncs from the last id it
// saw, so a notification published while the socket was down is delivered
// once it is back; notifications are delivered once each (deduplicated by
// id), in id order within each batch.
//
// Tokens (docs/PROTOCOL.md §2, §8): when the token is a JWT whose payload it can
// read, the client replaces its socket with one opened with a fresh token
// from the `token` function before the token's `exp` (at the latest 60 s
// before it, or a quarter of the token's lifetime before it when that is
// shorter), so an open tab never hits `token_expired`; the new socket opens
// and syncs before the old one closes. When the server signs the user out
// (`disconnected`, code `revoked`) or answers `token_expired`, it reconnects
// with a fresh token; a plain-string token that is then refused (or has
// expired) stops it with status "unauthorized". When another tab of the user
// takes its place (`too_many_connections`), it stops with status "closed"
// and does not reconnect.

/** @typedef {"connecting"|"open"|"reconnecting"|"failing"|"unauthorized"|"closed"} Status */

/**
 * @typedef {object} Notification
 * @property {string} id          ULID: unique, sorts by time.
 * @property {string} type        e.g. "workorder.assigned".
 * @property {string} [title]
 * @property {string} [body]
 * @property {Record<string, unknown>} [data]
 * @property {string} createdAt   ISO 8601.
 * @property {boolean} read       This user's read state when delivered: as the sync reported it
 *   (so a reloaded page shows each item's own state); false for a live one, which is unread when
 *   it arrives. Later changes come as `read` events.
 */

const DEFAULTS = {
  backoffBase: 500, // ms: the first retry waits up to this long (full jitter)
  backoffCap: 30_000, // ms: no retry waits longer
  failAfter: 5, // failures without ever opening before status "failing"
  pingInterval: 5 * 60_000, // ms: keeps API Gateway's 10-minute idle timeout away
  maxAge: 110 * 60_000, // ms: replace the socket before API Gateway's 2-hour limit
  requestTimeout: 15_000, // ms: how long sync and read answers may take
  syncLimit: 100, // notifications per synced frame (1..100)
};

const MAX_IDS_PER_READ = 100; // PROTOCOL.md §3
const SEEN_LIMIT = 2000; // ids remembered for deduplication
const REFRESH_MARGIN = 60_000; // ms: replace the socket at most this long before the token's exp...
const REFRESH_FRACTION = 0.25; // ...or this fraction of the token's lifetime before it, when shorter
const MIN_TOKEN_AGE = 1000; // ms: never replace a socket sooner than this for its token's sake
const MAX_TIMER = 2 ** 31 - 1; // ms: longer setTimeout delays fire at once
const SERVER_CLOSE_GRACE = 2000; // ms: how long the server may take to close a socket it let go of

/** An error the server answered with (`{"type":"error",...}`), or a timeout. */
export class NotifyError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = "NotifyError";
    /** "bad_request" | "unknown_action" | "internal" | "token_expired" | "timeout" | "closed" | "bad_frame" | "unauthorized" */
    this.code = code;
  }
}

/**
 * A connection to the notification service that survives drops, token
 * expiry and API Gateway's idle and 2-hour limits.
 */
export class NotifyClient {
  #url;
  #opts;
  #listeners = new Map();
  #status = /** @type {Status} */ ("closed");
  #started = false;
  #closed = false;
  #conn = null; // the current connection: {ws, token, replaces, opened, tokenBound, pingTimer, ageTimer, closeTimer}
  #retiring = new Set(); // connections being replaced (see #rotate)
  #failures = 0; // consecutive attempts that never opened
  #rotationFailures = 0; // consecutive replacements that did not open
  #refused = ""; // why the server let go of the last token: "revoked", "expired" or ""
  #everOpened = false;
  #retryTimer = null;
  #lastId = "";
  #seen = new Set();
  #unread = null;
  #syncing = false;
  #buffer = []; // live notifications that arrived during a sync
  #pending = new Map(); // ref → {resolve, reject, timer}
  #nextRef = 0;

  /**
   * @param {string} url  The WebSocket URL: the stack's `WebSocketUrl` output, locally `ws://HOST:PORT/`.
   * @param {object} options
   * @param {string | (() => string | Promise<string>)} options.token  A JWT, or a function returning a
   *   fresh one, called before each (re)connect and before a readable token's `exp`. If it throws, the
   *   client stops with status "unauthorized"; so does a plain string the server refuses after a
   *   sign-out (`revoked`) or lets expire (`token_expired`).
   * @param {string} [options.lastId]  Resume after this notification id on the first connect
   *   (e.g. kept in localStorage); without it the first sync returns the latest notifications.
   * @param {number} [options.backoffBase]  Reconnect backoff base in ms (default 500).
   * @param {number} [options.backoffCap]  Reconnect backoff cap in ms (default 30000).
   * @param {number} [options.failAfter]  Failed attempts without opening before status "failing" (default 5).
   * @param {number} [options.pingInterval]  Ping period in ms (default 5 minutes).
   * @param {number} [options.maxAge]  Replace the socket after this many ms (default 110 minutes).
   * @param {number} [options.requestTimeout]  Timeout of sync and read requests in ms (default 15000).
   * @param {number} [options.syncLimit]  Notifications per sync page, 1..100 (default 100).
   * @param {typeof WebSocket} [options.WebSocket]  WebSocket implementation (default globalThis.WebSocket).
   */
  constructor(url, options) {
    if (!options || (typeof options.token !== "string" && typeof options.token !== "function")) {
      throw new TypeError("NotifyClient: options.token must be a string or a function");
    }
    this.#url = url;
    this.#opts = { ...DEFAULTS, WebSocket: globalThis.WebSocket, ...options };
    this.#lastId = options.lastId || "";
  }

  /**
   * Listen to an event. Returns a function that removes the listener.
   * - `notification` (n: Notification): each notification once, live or synced.
   * - `status` (s: Status): connecting, open (connected and synced), reconnecting, failing, unauthorized, closed.
   * - `disconnected` ({code, reason}): the server closed the socket on purpose: code "revoked" (the user
   *   was signed out: the client reconnects with a fresh token) or "too_many_connections" (another tab
   *   of the user took its place: the client stops with status "closed"); reason is "" when none was given.
   * - `unread` (count: number): unread notifications of this user, 100 meaning "100 or more".
   * - `read` ({ids, unread}): notifications marked read, by this tab or another tab of the user
   *   (`ids` is empty after "mark all read").
   * - `gap` (): the client was away longer than the retention: some notifications may be lost.
   * - `error` (err: Error): a server error frame, a failed sync, or a token function that threw.
   * @param {"notification"|"status"|"unread"|"read"|"gap"|"disconnected"|"error"} event
   * @param {(value: any) => void} fn
   * @returns {() => void}
   */
  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    return () => this.#listeners.get(event).delete(fn);
  }

  /** The current status. @returns {Status} */
  get status() { return this.#status; }
  /** The unread count, or null before the first sync. @returns {number|null} */
  get unread() { return this.#unread; }
  /** The highest notification id seen ("" before any): persist it to resume later. @returns {string} */
  get lastId() { return this.#lastId; }

  /** Connect (once; later calls do nothing). @returns {this} */
  connect() {
    if (!this.#started && !this.#closed) {
      this.#started = true;
      this.#open();
    }
    return this;
  }

  /**
   * Mark notifications read for this user (every tab of the user gets the new count).
   * Resolves with the ids now read and the unread count; waits for the connection when it is down.
   * @param {string[]} ids
   * @returns {Promise<{ids: string[], unread: number}>}
   */
  async markRead(ids) {
    const result = { ids: [], unread: this.#unread ?? 0 };
    for (let i = 0; i < ids.length; i += MAX_IDS_PER_READ) {
      const answer = await this.#request({ action: "read", ids: ids.slice(i, i + MAX_IDS_PER_READ) });
      result.ids.push(...answer.ids);
      result.unread = answer.unread;
    }
    return result;
  }

  /**
   * Mark everything visible now read for this user.
   * @returns {Promise<{ids: string[], unread: number}>}
   */
  markAllRead() {
    return this.#request({ action: "read", all: true });
  }

  /** Close the connection for good: status "closed", pending requests rejected. */
  close() {
    this.#stop("closed");
  }

  // ---- connection lifecycle ----

  async #open() {
    if (this.#closed) return;
    if (this.#status !== "failing") this.#setStatus(this.#everOpened ? "reconnecting" : "connecting");
    let token;
    try {
      token = typeof this.#opts.token === "function" ? await this.#opts.token() : this.#opts.token;
    } catch (err) {
      this.#emit("error", err);
      this.#stop("unauthorized");
      return;
    }
    if (this.#closed) return;
    this.#connect(token, null);
  }

  /** Opens a socket; when it `replaces` one, that one stays until the new one has synced. */
  #connect(token, replaces) {
    const sep = this.#url.includes("?") ? "&" : "?";
    const ws = new this.#opts.WebSocket(`${this.#url}${sep}token=${encodeURIComponent(token)}`);
    const conn = { ws, token, replaces, opened: false, tokenBound: false, pingTimer: null, ageTimer: null, closeTimer: null };
    if (!replaces) this.#conn = conn;
    ws.onopen = () => {
      if (this.#closed) return ws.close(1000);
      conn.opened = true;
      this.#failures = 0;
      this.#everOpened = true;
      this.#refused = "";
      if (replaces) {
        // The new socket takes over; the old one keeps delivering until this one has synced.
        this.#rotationFailures = 0;
        if (this.#conn) this.#retiring.add(this.#conn);
        else clearTimeout(this.#retryTimer); // the old one dropped meanwhile: this one replaces the retry
        this.#conn = conn;
      }
      conn.pingTimer = setInterval(() => this.#send(conn, { action: "ping" }), this.#opts.pingInterval);
      // Replace it before API Gateway's 2-hour limit and, when a token function can give a
      // fresh token, before its token expires.
      const life = typeof this.#opts.token === "function" ? tokenLife(token, Date.now()) : Infinity;
      conn.tokenBound = life < this.#opts.maxAge;
      conn.ageTimer = setTimeout(() => this.#rotate(conn), Math.min(this.#opts.maxAge, life, MAX_TIMER));
      this.#sync(conn);
    };
    ws.onmessage = (ev) => this.#onFrame(conn, ev.data);
    ws.onclose = () => this.#onClose(conn);
  }

  /**
   * Replace the socket `old` before API Gateway closes it at 2 hours, or before its token
   * expires, with one opened with a fresh token, losing nothing: the new socket syncs
   * from the last id seen before the old one closes.
   */
  async #rotate(old) {
    if (this.#closed) return;
    let token;
    try {
      token = typeof this.#opts.token === "function" ? await this.#opts.token() : this.#opts.token;
    } catch (err) {
      this.#emit("error", err); // the current socket lives on (its close reconnects as usual); try again
      return this.#rotationFailed(old);
    }
    if (this.#closed || (this.#conn && this.#conn !== old)) return; // it closed and was replaced meanwhile
    // A token function that caches may hand back the very token about to expire: ask again later.
    if (this.#conn && old.tokenBound && token === old.token) return this.#rotationFailed(old);
    this.#connect(token, old);
  }

  /** A replacement of `old` did not open: `old` lives on; try again after a backoff. */
  #rotationFailed(old) {
    if (this.#closed || this.#conn !== old) return;
    this.#rotationFailures++;
    const ceiling = Math.min(this.#opts.backoffCap, this.#opts.backoffBase * 2 ** this.#rotationFailures);
    clearTimeout(old.ageTimer);
    old.ageTimer = setTimeout(() => this.#rotate(old), ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  #onClose(conn) {
    clearInterval(conn.pingTimer);
    clearTimeout(conn.ageTimer);
    clearTimeout(conn.closeTimer);
    if (this.#retiring.delete(conn)) return; // replaced: nothing to do
    if (conn !== this.#conn) {
      if (conn.replaces && !conn.opened) this.#rotationFailed(conn.replaces);
      return;
    }
    this.#conn = null;
    this.#syncing = false;
    this.#rejectPending("closed", "the connection closed");
    if (this.#closed) return;
    if (!conn.opened && this.#refused && typeof this.#opts.token !== "function") {
      // The same string again, and the server would not have it: no fresh token to try.
      this.#emit("error", new NotifyError("unauthorized", `the token was refused after the server ${
        this.#refused === "revoked" ? "signed the user out" : "let it expire"}; give a fresh one`));
      return this.#stop("unauthorized");
    }
    if (!conn.opened) this.#failures++;
    const failing = this.#failures >= this.#opts.failAfter;
    this.#setStatus(failing ? "failing" : this.#everOpened ? "reconnecting" : "connecting");
    // Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^failures)].
    const ceiling = Math.min(this.#opts.backoffCap, this.#opts.backoffBase * 2 ** this.#failures);
    this.#retryTimer = setTimeout(() => this.#open(), Math.random() * ceiling);
  }

  #stop(status) {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    for (const conn of [this.#conn, ...this.#retiring]) {
      if (!conn) continue;
      clearInterval(conn.pingTimer);
      clearTimeout(conn.ageTimer);
      conn.ws.close(1000, "client closed");
    }
    this.#conn = null;
    this.#retiring.clear();
    this.#rejectPending("closed", "the client is closed");
    this.#setStatus(status);
  }

  // ---- sync ----

  /** Fetch what was missed (after lastId), page by page, then merge the live buffer. */
  async #sync(conn) {
    this.#syncing = true;
    const batch = [];
    let gap = false;
    let unread = null;
    try {
      let frame = { action: "sync", limit: this.#opts.syncLimit };
      if (this.#lastId) frame.after = this.#lastId;
      for (;;) {
        const synced = await this.#request(frame, conn);
        // Each synced notification carries this user's read flag (PROTOCOL.md §5).
        for (const n of synced.notifications ?? []) {
          if (n && typeof n === "object") batch.push({ ...n, read: n.read === true });
        }
        gap ||= synced.gap;
        unread = synced.unread;
        if (!synced.more) break;
        frame = { action: "sync", cursor: synced.cursor, limit: this.#opts.syncLimit };
      }
    } catch (err) {
      if (conn !== this.#conn) return;
      this.#syncing = false;
      this.#emit("error", err);
      conn.ws.close(4000, "sync failed"); // reconnect and try again, with backoff
      return;
    }
    if (conn !== this.#conn) return; // replaced meanwhile: the newer one syncs
    this.#syncing = false;
    for (const old of this.#retiring) old.ws.close(1000, "replaced");
    if (gap) this.#emit("gap");
    // Live ones the sync did not return arrived after the server counted: count them on top.
    const synced = new Set(batch.map((n) => n.id));
    const late = new Set(this.#buffer.filter((n) => !synced.has(n.id) && !this.#seen.has(n.id)).map((n) => n.id));
    this.#deliver(batch.concat(this.#buffer), false);
    this.#buffer = [];
    this.#setUnread(unread === null ? unread : Math.min(unread + late.size, 100));
    this.#setStatus("open");
  }

  /** Deliver new notifications in id order, each once. Returns how many were new. */
  #deliver(list, countUnread) {
    list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    let fresh = 0;
    for (const n of list) {
      if (!n || typeof n.id !== "string" || this.#seen.has(n.id)) continue;
      this.#remember(n.id);
      fresh++;
      if (countUnread) this.#bumpUnread();
      this.#emit("notification", n);
    }
    return fresh;
  }

  #remember(id) {
    this.#seen.add(id);
    if (id > this.#lastId) this.#lastId = id;
    if (this.#seen.size > SEEN_LIMIT) {
      // Forget the oldest half: sync never goes back further than 30 s before lastId.
      const sorted = [...this.#seen].sort();
      this.#seen = new Set(sorted.slice(sorted.length / 2));
    }
  }

  // ---- frames ----

  #onFrame(conn, data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return this.#emit("error", new NotifyError("bad_frame", "the server sent a frame that is not JSON"));
    }
    const waiter = frame.ref ? this.#pending.get(frame.ref) : undefined;
    if (waiter) {
      this.#pending.delete(frame.ref);
      clearTimeout(waiter.timer);
      if (frame.type === "error") waiter.reject(new NotifyError(frame.code, frame.message));
      else waiter.resolve(frame);
    }
    switch (frame.type) {
      case "notification": {
        // A live notification is unread when it arrives: its frame carries no read flag.
        if (!frame.notification || typeof frame.notification !== "object") break;
        const n = { ...frame.notification, read: false };
        if (this.#syncing) this.#buffer.push(n);
        else this.#deliver([n], true);
        break;
      }
      case "read": // ours (with ref) or another tab's
        this.#setUnread(frame.unread);
        this.#emit("read", { ids: frame.ids || [], unread: frame.unread });
        break;
      case "disconnected": // the server closes this socket on purpose (PROTOCOL.md §3)
        this.#onDisconnected(conn, String(frame.code ?? ""), typeof frame.reason === "string" ? frame.reason : "");
        break;
      case "error":
        if (!waiter) this.#emit("error", new NotifyError(frame.code, frame.message));
        if (frame.code === "token_expired") this.#tokenRefused(conn, "expired");
        break;
      // "pong" and "synced" need nothing more.
    }
  }

  #onDisconnected(conn, code, reason) {
    if (conn !== this.#conn) return; // one being replaced: its successor carries on
    this.#emit("disconnected", { code, reason });
    if (code === "too_many_connections") return this.#stop("closed"); // another tab took its place
    if (code === "revoked") this.#tokenRefused(conn, "revoked");
    // Any other code: the server closes the socket, and the client reconnects as after any drop.
  }

  /** The server let go of this socket's token: reconnect with a fresh one, if there can be one. */
  #tokenRefused(conn, why) {
    if (conn !== this.#conn) return; // one being replaced: its successor carries on
    this.#refused = why;
    if (why === "expired" && typeof this.#opts.token !== "function") {
      // A string cannot be renewed, and this one is past its exp: the server would refuse it.
      this.#emit("error", new NotifyError("unauthorized", "the token expired; give a fresh one"));
      return this.#stop("unauthorized");
    }
    // The server closes it (and counts it "disconnected" only if it is still there): give it
    // a moment, then close it from here. Its close reconnects, with a fresh token.
    clearTimeout(conn.closeTimer);
    conn.closeTimer = setTimeout(() => conn.ws.close(1000, "token refused"), SERVER_CLOSE_GRACE);
  }

  /** Send a request and wait for the answer with the same ref; waits for the connection when it is down. */
  #request(frame, conn) {
    const ref = `r${++this.#nextRef}`;
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(new NotifyError("closed", "the client is closed"));
      const timer = setTimeout(() => {
        this.#pending.delete(ref);
        reject(new NotifyError("timeout", `no answer to ${frame.action} within ${this.#opts.requestTimeout} ms`));
      }, this.#opts.requestTimeout);
      const pending = { resolve, reject, timer, frame: { ...frame, ref }, sentOn: null };
      this.#pending.set(ref, pending);
      const target = conn || this.#conn;
      if (target?.opened && this.#send(target, pending.frame)) pending.sentOn = target;
      // else: sent by #flush when a connection opens
    });
  }

  #send(conn, frame) {
    if (conn.ws.readyState !== 1) return false;
    conn.ws.send(JSON.stringify(frame));
    return true;
  }

  #rejectPending(code, message) {
    // Reads wait for the next connection: only syncs are tied to the socket that closed.
    for (const [ref, p] of this.#pending) {
      if (p.frame.action === "read" && !this.#closed) continue;
      clearTimeout(p.timer);
      this.#pending.delete(ref);
      p.reject(new NotifyError(code, message));
    }
  }

  #setStatus(status) {
    if (status === "open") this.#flush();
    if (status === this.#status) return;
    this.#status = status;
    this.#emit("status", status);
  }

  /** Sends the reads that waited for a connection. */
  #flush() {
    for (const p of this.#pending.values()) {
      if (p.frame.action === "read" && p.sentOn !== this.#conn && this.#send(this.#conn, p.frame)) p.sentOn = this.#conn;
    }
  }

  #setUnread(n) {
    if (typeof n !== "number" || n === this.#unread) return;
    this.#unread = n;
    this.#emit("unread", n);
  }

  #bumpUnread() {
    this.#setUnread(Math.min((this.#unread ?? 0) + 1, 100));
  }

  #emit(event, value) {
    for (const fn of this.#listeners.get(event) ?? []) {
      try {
        fn(value);
      } catch (err) {
        if (event !== "error") queueMicrotask(() => { throw err; }); // report, don't break the client
      }
    }
  }
}

/**
 * How long (ms) a socket opened at `now` with `token` may serve before it is replaced with a
 * fresh token: until the token's `exp` less a margin (60 s, or a quarter of the token's
 * lifetime when shorter), or Infinity when the token is not a JWT with a readable `exp`.
 * The lifetime is `exp - iat`: when this machine's clock makes the token look (nearly)
 * expired already, the clock is off (the server accepted it), and the lifetime is used.
 */
function tokenLife(token, now) {
  const claims = jwtClaims(token);
  if (!claims || typeof claims.exp !== "number" || !Number.isFinite(claims.exp)) return Infinity;
  const left = claims.exp * 1000 - now;
  const { iat } = claims;
  const lifetime = typeof iat === "number" && Number.isFinite(iat) && iat < claims.exp ? (claims.exp - iat) * 1000 : left;
  if (lifetime <= 0) return Infinity; // no iat and expired by this clock: nothing to go by
  const margin = Math.min(REFRESH_MARGIN, lifetime * REFRESH_FRACTION);
  const until = left > margin ? Math.min(left, lifetime) : lifetime;
  return Math.max(until - margin, MIN_TOKEN_AGE);
}

/** The claims of a JWT (its payload: base64url JSON), or null when `token` is not one. */
function jwtClaims(token) {
  const part = typeof token === "string" ? token.split(".")[1] : undefined;
  if (!part || !/^[A-Za-z0-9_-]+$/.test(part)) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}
