// The agent's browser softphone: SIP over secure WebSocket to Asterisk (JsSIP).
// The dialer nails the agent's leg up once per shift: Asterisk calls the softphone when
// the agent logs in to the dialer, the softphone answers automatically, and debtors are
// then moved into the agent's conference without ringing the agent again.
import JsSIP from "jssip";

export class Softphone {
  constructor(config, onStatus) {
    this.config = config;
    this.onStatus = onStatus;
    this.session = null;
  }

  start() {
    if (!this.config.enabled) {
      this.onStatus("simulated (no Asterisk WebSocket configured)");
      return;
    }
    const socket = new JsSIP.WebSocketInterface(this.config.ws_url);
    this.ua = new JsSIP.UA({
      sockets: [socket],
      uri: this.config.sip_uri,
      password: this.config.password,
      register: true,
      session_timers: false,
    });
    this.ua.on("registered", () => this.onStatus("registered"));
    this.ua.on("unregistered", () => this.onStatus("unregistered"));
    this.ua.on("registrationFailed", (e) => this.onStatus(`registration failed: ${e.cause}`));
    this.ua.on("disconnected", () => this.onStatus("disconnected"));
    this.ua.on("newRTCSession", ({ session, originator }) => {
      if (originator !== "remote") return;
      this.session = session;
      session.on("ended", () => this.ended());
      session.on("failed", () => this.ended());
      session.on("peerconnection", ({ peerconnection }) => {
        peerconnection.addEventListener("track", (event) => {
          const audio = document.getElementById("remote-audio");
          if (audio) audio.srcObject = event.streams[0];
        });
      });
      // The incoming call is the nailed-up leg from Asterisk: answer it at once.
      session.answer({ mediaConstraints: { audio: true, video: false } });
      this.onStatus("leg up");
    });
    this.ua.start();
  }

  ended() {
    this.session = null;
    this.onStatus("leg down");
  }

  mute(on) {
    if (!this.session) return;
    if (on) this.session.mute({ audio: true });
    else this.session.unmute({ audio: true });
  }

  stop() {
    if (this.ua) this.ua.stop();
  }
}
