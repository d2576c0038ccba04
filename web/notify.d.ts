// Types of notify.js, the browser client of the work-order notification service (protocol v1.1).

/** Connection status. "open" means connected and synced: nothing missed. */
export type Status = "connecting" | "open" | "reconnecting" | "failing" | "unauthorized" | "closed";

/** A notification, as in the `notification` and `synced` frames (docs/PROTOCOL.md §3). */
export interface Notification {
  /** ULID: unique, and sorts by time. */
  id: string;
  /** The publisher's event type, e.g. "workorder.assigned". */
  type: string;
  title?: string;
  body?: string;
  /** Any JSON object, e.g. {"workOrderId": "WO-1042"}. */
  data?: Record<string, unknown>;
  /** ISO 8601, e.g. "2026-11-25T10:00:00.000Z". */
  createdAt: string;
  /** This user's read state when delivered: for a notification from a sync, as the server reported
   * it (docs/PROTOCOL.md §5), so a reloaded page shows each item's own state; false for a live one,
   * which is unread when it arrives (its frame carries no `read`). Later changes come as `read` events. */
  read: boolean;
}

/** The answer to markRead / markAllRead, and the `read` event (from any tab of the user). */
export interface ReadResult {
  /** Ids now read ([] after "mark all read"). */
  ids: string[];
  /** Unread notifications left; 100 means "100 or more". */
  unread: number;
}

/** The `disconnected` event: the server closed the socket on purpose (docs/PROTOCOL.md §3). */
export interface Disconnected {
  /** "revoked": the user was signed out (a disconnect request); the client reconnects with a fresh
   * token from its token function (a plain-string token that is then refused stops it, "unauthorized").
   * "too_many_connections": another tab of the user took its place; the client stops, status "closed",
   * and does not reconnect by itself. */
  code: "revoked" | "too_many_connections" | (string & {});
  /** The reason the disconnect request gave, "" when none. */
  reason: string;
}

export interface NotifyClientOptions {
  /** A JWT, or a function (possibly async) returning a fresh one, called before each (re)connect and,
   * when the JWT's payload has a readable `exp`, before that: the socket is then replaced by one opened
   * with a fresh token (60 s before `exp`, or a quarter of the token's lifetime before it when shorter),
   * losing nothing, so an open tab never hits `token_expired`.
   * A function that throws stops the client with status "unauthorized"; so does a plain string that the
   * server refuses after signing the user out (`revoked`), or lets expire (`token_expired`). */
  token: string | (() => string | Promise<string>);
  /** Resume after this id on the first connect; without it the first sync returns the latest notifications. */
  lastId?: string;
  /** Reconnect backoff base, ms (default 500). Delays are uniform in [0, min(cap, base·2^failures)]. */
  backoffBase?: number;
  /** Reconnect backoff cap, ms (default 30000). */
  backoffCap?: number;
  /** Failed attempts without ever opening before status "failing" (default 5). */
  failAfter?: number;
  /** Ping period, ms (default 300000): keeps the 10-minute idle timeout away. */
  pingInterval?: number;
  /** Replace the socket after this long, ms (default 6600000 = 1h50m): before the 2-hour limit. */
  maxAge?: number;
  /** Timeout of sync and read requests, ms (default 15000). */
  requestTimeout?: number;
  /** Notifications per sync page, 1..100 (default 100). */
  syncLimit?: number;
  /** WebSocket implementation (default globalThis.WebSocket). */
  WebSocket?: typeof WebSocket;
}

export interface NotifyEvents {
  notification: Notification;
  status: Status;
  unread: number;
  read: ReadResult;
  gap: undefined;
  disconnected: Disconnected;
  error: Error;
}

/** An error frame from the server, or a request that timed out or was cut short by close(). */
export class NotifyError extends Error {
  /** "bad_request" | "unknown_action" | "internal" | "token_expired" | "timeout" | "closed" | "bad_frame" |
   * "unauthorized" (a plain-string token that cannot be renewed was refused or expired) */
  readonly code: string;
}

export class NotifyClient {
  constructor(url: string, options: NotifyClientOptions);
  /** Listen to an event; returns a function that removes the listener. */
  on<E extends keyof NotifyEvents>(event: E, fn: (value: NotifyEvents[E]) => void): () => void;
  readonly status: Status;
  /** Unread count, null before the first sync. */
  readonly unread: number | null;
  /** Highest notification id seen ("" before any): persist it to resume later. */
  readonly lastId: string;
  /** Connect (once; later calls do nothing). */
  connect(): this;
  /** Mark notifications read for this user; waits for the connection when it is down. */
  markRead(ids: string[]): Promise<ReadResult>;
  /** Mark everything visible now read for this user. */
  markAllRead(): Promise<ReadResult>;
  /** Close for good: status "closed". */
  close(): void;
}
