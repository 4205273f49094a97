// Live updates: GET /api/v2/stream read with fetch (EventSource cannot send the bearer token), parsed
// as server-sent events. When the stream cannot be held, it falls back to polling the notification
// feed and telling the pages to reload every few seconds, and keeps trying to get the stream back.

import { Notification, get, token } from "./api";

export type LiveMode = "connecting" | "live" | "polling" | "stopped";
type Handler = (data: unknown) => void;

const POLL_EVERY_MS = 5000;
const RETRY_MS = [500, 1000, 2000, 4000, 8000];

export class Live {
  private handlers = new Map<string, Set<Handler>>();
  private abort: AbortController | null = null;
  private failures = 0;
  private pollTimer: number | undefined;
  private lastNotificationId = 0;
  mode: LiveMode = "stopped";
  onMode: (mode: LiveMode) => void = () => {};

  on(event: string, handler: Handler): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  private emit(event: string, data: unknown): void {
    if (event === "notification") {
      const id = (data as Notification).id;
      if (id <= this.lastNotificationId) return; // seen already (polling and stream overlap)
      this.lastNotificationId = id;
    }
    for (const handler of this.handlers.get(event) ?? []) handler(data);
  }

  /// The newest notification id the page has shown, so polling continues after it.
  noteNotification(id: number): void {
    this.lastNotificationId = Math.max(this.lastNotificationId, id);
  }

  start(): void {
    if (this.abort) return;
    this.abort = new AbortController();
    void this.run(this.abort.signal);
  }

  stop(): void {
    this.abort?.abort();
    this.abort = null;
    window.clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.setMode("stopped");
  }

  private setMode(mode: LiveMode): void {
    if (this.mode !== mode) {
      this.mode = mode;
      this.onMode(mode);
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (this.mode !== "polling") this.setMode("connecting");
      try {
        await this.readStream(signal);
        this.failures = 0; // the server ended the stream (shutting down): reconnect
      } catch {
        if (signal.aborted) return;
        this.failures += 1;
        if (this.failures >= 3) this.startPolling();
      }
      const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
      await new Promise((resolve) => window.setTimeout(resolve, delay));
    }
  }

  private async readStream(signal: AbortSignal): Promise<void> {
    const response = await fetch("/api/v2/stream", {
      headers: { Authorization: `Bearer ${token() ?? ""}`, Accept: "text/event-stream" },
      signal,
      cache: "no-store",
    });
    if (!response.ok || !response.body) throw new Error(`stream: HTTP ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.dispatch(block);
      }
    }
  }

  private dispatch(block: string): void {
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue; // keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length === 0) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    if (event === "hello") {
      this.failures = 0;
      this.stopPolling();
      this.setMode("live");
      // Anything missed while disconnected: the pages reload.
      this.emit("resync", {});
      return;
    }
    this.emit(event, parsed);
  }

  private startPolling(): void {
    this.setMode("polling");
    if (this.pollTimer !== undefined) return;
    this.pollTimer = window.setInterval(() => void this.poll(), POLL_EVERY_MS);
  }

  private stopPolling(): void {
    window.clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  private async poll(): Promise<void> {
    try {
      const after = this.lastNotificationId;
      const events = await get<Notification[]>(`/notifications?after_id=${after}&limit=100`);
      for (const e of events) this.emit("notification", e);
      this.emit("resync", {});
    } catch {
      // still down; try again at the next tick
    }
  }
}

export const live = new Live();
