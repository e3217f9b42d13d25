// HTTP and WebSocket access to the Pratica server.

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

export async function api(method, path, body) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// One WebSocket with request/reply matching, topic handlers and reconnection.
export class Live {
  constructor() {
    this.nextId = 1;
    this.pending = new Map();
    this.handlers = new Map();
    this.topics = new Set();
    this.onStatus = () => {};
    this.closedByUs = false;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    this.ws.addEventListener("close", () => {
      this.onStatus("disconnected");
      for (const { reject } of this.pending.values()) reject(new Error("connection lost"));
      this.pending.clear();
      if (!this.closedByUs) setTimeout(() => this.connect(), 1000);
    });
    return new Promise((resolve) => {
      this.ready = resolve;
    });
  }

  receive(message) {
    if (message.type === "hello") {
      this.onStatus("connected");
      for (const topic of this.topics) this.request({ type: "subscribe", topic }).catch(() => {});
      this.ready(message.user);
    } else if (message.type === "reply") {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.data);
      else waiter.reject(new ApiError(400, message));
    } else if (message.type === "event") {
      const handler = this.handlers.get(message.topic.split(":")[0]);
      if (handler) handler(message.topic, message.data);
    }
  }

  request(message) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, ...message }));
    });
  }

  on(prefix, handler) {
    this.handlers.set(prefix, handler);
  }

  async follow(topic) {
    this.topics.add(topic);
    return this.request({ type: "subscribe", topic });
  }

  async unfollow(topic) {
    this.topics.delete(topic);
    return this.request({ type: "unsubscribe", topic });
  }

  close() {
    this.closedByUs = true;
    if (this.ws) this.ws.close();
  }
}
