/* The interaction window's message area (WhatsApp guide, "Handling WhatsApp Interactions on Workspace Desktop
   Edition"): customer messages left, agent messages right, errors and the session's start centred; each message
   with its arrival time or, when it arrived later than `whatsappsession.message-delay-timespan` seconds after it
   was written, its origination time in bold with the arrival time as a tooltip; a timestamp out of chronological
   order in red; the contact's name or the default nickname; earlier interactions behind "see older messages..."
   (GET /api/interactions/{id}/history/: `transcript-interactions-count`, `show-cross-channel-messages`);
   locations with their map link and preview (the `location-map` options, applied by the server); files with
   thumbnails; receipts (sent, delivered, read, failed with the reason); an e-mail's subject above its text.

   DMS.Transcript.open(container, interaction) / .onEvent(kind, data) / .close(); everything comes from the API
   and the event stream (workspace.js). */
"use strict";

(function () {
  const DEFAULT_NICKNAME = "Customer";
  const RECEIPT_WORDS = { queued: "Sending…", sent: "Sent", delivered: "Delivered", read: "Read", failed: "Failed", removed: "Removed" };

  const el = DMS.el;

  /* Links and pictures only to http(s) (the server checks them as well): never a javascript: or data: URL. */
  const safeUrl = (url) => (typeof url === "string" && /^https?:\/\//i.test(url) ? url : null);
  const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const stamp = (iso) => new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
  const sessionOption = (interaction, name) => {
    const kept = interaction.session_options || {};
    return name in kept ? kept[name] : DMS.optionsFor(interaction.channel)[name];
  };

  /* The contact of the open interaction, read once per opening and shared with contact.js and reply.js. */
  function contactOf(interaction) {
    DMS.contacts = DMS.contacts || new Map();
    if (interaction.contact === null || interaction.contact === undefined) return Promise.resolve(null);
    if (!DMS.contacts.has(interaction.contact)) {
      DMS.contacts.set(interaction.contact, DMS.api(`/api/contacts/${interaction.contact}/`).catch(() => null));
    }
    return DMS.contacts.get(interaction.contact);
  }

  /* The customer's name in the message area: "If the customer's contact information matches an entry in your
     contact database, the customer's name appears ... Otherwise, a default nickname appears." */
  function customerName(contact) {
    if (!contact) return DEFAULT_NICKNAME;
    const full = `${contact.first_name || ""} ${contact.last_name || ""}`.trim();
    return full || contact.nickname || DEFAULT_NICKNAME;
  }

  const state = { container: null, interaction: null, list: null, older: null, name: DEFAULT_NICKNAME,
                  latestShown: null, nodes: new Map(), delay: 60 };

  function messageNode(message, { history = false } = {}) {
    const inbound = message.direction === "inbound";
    const arrived = message.created_at;
    const delayed = Boolean(message.origin_time)
      && (Date.parse(arrived) - Date.parse(message.origin_time)) / 1000 > state.delay;
    const shownIso = delayed ? message.origin_time : arrived;
    let outOfOrder = false;
    if (!history) {
      // Messages come in arrival order: only a shown origination time can be earlier than one shown above it.
      const shown = Date.parse(shownIso);
      outOfOrder = state.latestShown !== null && shown < state.latestShown;
      state.latestShown = state.latestShown === null ? shown : Math.max(state.latestShown, shown);
    }
    const time = el(delayed ? "b" : "time", {
      class: ["timestamp", delayed ? "delayed" : "", outOfOrder ? "out-of-order" : ""].filter(Boolean).join(" "),
      datetime: shownIso,
      title: [outOfOrder ? "out of chronological order: written before a message shown above it" : "",
              delayed ? `arrived ${stamp(arrived)} (written ${stamp(message.origin_time)})` : stamp(arrived)]
        .filter(Boolean).join("; "),
      text: clock(shownIso),
    });
    const who = inbound ? state.name : "Agent";
    const body = el("div", { class: "msg-body" });
    const subject = emailSubject(message);
    if (subject) body.append(el("p", { class: "msg-subject", text: subject }));
    if (message.text) body.append(el("p", { class: "msg-text", text: message.text }));
    if (message.location) body.append(locationNode(message.location));
    if (message.attachments && message.attachments.length) body.append(filesNode(message.attachments));
    if (!message.text && !message.location && !(message.attachments && message.attachments.length)) {
      body.append(el("p", { class: "msg-text muted", text: "(no text)" }));
    }
    const meta = el("div", { class: "msg-meta" }, el("span", { class: "msg-who", text: who }), " ", time);
    if (!inbound) meta.append(" ", receiptNode(message));
    const node = el("div", {
      class: `msg ${inbound ? "msg-in" : "msg-out"}`, role: "article",
      "aria-label": `${who}, ${clock(shownIso)}`, "data-message-id": message.id,
      "data-status": message.status,
    }, body, meta);
    return node;
  }

  /* An e-mail's subject (a customer's e-mail, or the e-mail an agent's text became): in the transcript's
     payload, or on the stream's event, which carries no payload. */
  function emailSubject(message) {
    if (typeof message.subject === "string") return message.subject;
    const payload = message.payload || {};
    return typeof payload.subject === "string" ? payload.subject : "";
  }

  function receiptNode(message) {
    const word = RECEIPT_WORDS[message.status] || message.status;
    return el("span", { class: `receipt receipt-${message.status}`, "data-receipt": message.status, text: word,
                        title: message.status === "failed" ? reasonText(message.reasons) : word });
  }

  function reasonText(reasons) {
    if (!Array.isArray(reasons) || !reasons.length) return "no reason given";
    return reasons.map((reason) => (typeof reason === "object" && reason
      ? [reason.code, reason.message || reason.description].filter(Boolean).join(" ") : String(reason))).join("; ");
  }

  /* "Errors are centered": a message the channel could not deliver. */
  function errorNode(message) {
    return el("div", { class: "msg-error", role: "note", "data-error-for": message.id },
      el("span", { text: `Message not delivered: ${reasonText(message.reasons)}` }));
  }

  function locationNode(location) {
    const label = [location.name, location.address].filter(Boolean).join(", ")
      || `${location.latitude}, ${location.longitude}`;
    const box = el("figure", { class: "msg-location" });
    if (safeUrl(location.previewUrl)) {
      box.append(el("img", { src: safeUrl(location.previewUrl), alt: `Map of ${label}`, loading: "lazy",
                             width: location.previewWidth || null, height: location.previewHeight || null }));
    }
    const caption = el("figcaption", {}, el("span", { class: "location-pin", text: "Location: " }));
    if (safeUrl(location.mapUrl)) {
      caption.append(el("a", { href: safeUrl(location.mapUrl), target: "_blank", rel: "noopener noreferrer", text: label,
                               class: "location-link" }));
    } else {
      caption.append(el("span", { text: label }));
    }
    box.append(caption);
    return box;
  }

  function filesNode(attachments) {
    const list = el("ul", { class: "msg-files" });
    for (const file of attachments) {
      const name = file.fileName || "file";
      const size = typeof file.size === "number" ? ` (${Math.max(1, Math.round(file.size / 1024))} KB)` : "";
      const item = el("li", { class: `file file-${file.status || "stored"}` });
      if (file.status === "pending") {
        item.append(el("span", { text: `${name}${size}: receiving…` }));
      } else if (file.status === "failed") {
        item.append(el("span", { class: "file-failed", text: `${name}: not received (${file.reason || "failed"})` }));
      } else if (safeUrl(file.url)) {
        const link = el("a", { href: safeUrl(file.url), target: "_blank", rel: "noopener noreferrer", class: "file-link" });
        const thumbnail = safeUrl(file.thumbnailUrl) || (String(file.contentType || "").startsWith("image/") ? safeUrl(file.url) : null);
        if (thumbnail) link.append(el("img", { src: thumbnail, alt: name, class: "file-thumbnail", loading: "lazy" }));
        link.append(el("span", { text: `${name}${size}` }));
        item.append(link);
      } else {
        item.append(el("span", { text: `${name}${size}` }));
      }
      list.append(item);
    }
    return list;
  }

  function centred(text, className = "session-start") {
    return el("div", { class: className, role: "note" }, el("span", { text }));
  }

  function append(message) {
    const node = messageNode(message);
    state.nodes.set(message.id, node);
    state.list.append(node);
    if (message.status === "failed") state.list.append(errorNode(message));
  }

  function replace(message) {
    const old = state.nodes.get(message.id);
    if (!old) return append(message);
    const saved = state.latestShown;
    state.latestShown = null;  // a replaced message keeps its place: its mark is not computed again
    const node = messageNode(message, { history: true });
    state.latestShown = saved;
    for (const mark of old.querySelectorAll(".out-of-order")) {
      const time = node.querySelector(".timestamp");
      if (time) { time.classList.add("out-of-order"); time.title = mark.title; }
    }
    old.replaceWith(node);
    state.nodes.set(message.id, node);
  }

  async function showOlder(button) {
    button.disabled = true;
    try {
      const history = await DMS.api(`/api/interactions/${state.interaction.id}/history/`);
      const block = el("div", { class: "older", "aria-label": "Older messages" });
      const earlier = [...history.interactions].reverse();  // oldest first, above the current session
      for (const interaction of earlier) {
        block.append(centred(`Session started ${stamp(interaction.created_at)}`
          + (interaction.channel !== state.interaction.channel ? ` on ${interaction.channel}` : "")
          + (interaction.disposition ? ` · ${interaction.disposition}` : "")));
        for (const message of interaction.messages) {
          const shown = { ...message };
          if (message.payload && typeof message.payload.location === "object" && message.payload.location) {
            shown.location = message.payload.location;
          }
          block.append(messageNode(shown, { history: true }));
        }
      }
      if (!earlier.length) block.append(centred("No older messages.", "older-none"));
      state.older.replaceWith(block);
      state.older = block;
    } catch (error) {
      button.disabled = false;
      DMS.flash(error.message);
    }
  }

  function render(interaction, contact) {
    state.name = customerName(contact);
    state.latestShown = null;
    state.nodes = new Map();
    const older = el("button", { type: "button", class: "see-older linklike", text: "see older messages...",
                                 title: `The contact's earlier interactions (at most ${sessionOption(interaction, "whatsappsession.transcript-interactions-count")})` });
    older.addEventListener("click", () => showOlder(older));
    state.older = el("div", { class: "older-slot" }, older);
    state.list = el("div", { class: "transcript-messages", role: "log", "aria-live": "polite",
                             "aria-label": `Messages with ${state.name}` });
    state.container.replaceChildren(state.older, centred(`Session started ${stamp(interaction.created_at)}`), state.list);
    for (const message of interaction.messages || []) append(message);
    state.container.scrollTop = state.container.scrollHeight;
  }

  async function open(container, interaction) {
    state.container = container;
    state.interaction = interaction;
    state.delay = Number(sessionOption(interaction, "whatsappsession.message-delay-timespan") ?? 60);
    container.classList.add("transcript-window");
    render(interaction, null);
    const contact = await contactOf(interaction);
    if (state.interaction !== interaction) return;  // another conversation was opened meanwhile
    if (contact) {
      state.name = customerName(contact);
      state.list.setAttribute("aria-label", `Messages with ${state.name}`);
      for (const who of state.list.querySelectorAll(".msg-in .msg-who")) who.textContent = state.name;
    }
  }

  function onEvent(kind, data) {
    if (!state.interaction) return;
    if (kind === "message" && data.interaction === state.interaction.id) {
      if (state.nodes.has(data.id)) replace(data); else append(data);
      if (DMS.options["whatsappsession.focus-on-new-messages"] !== false || data.direction === "outbound") {
        state.container.scrollTop = state.container.scrollHeight;
      }
    } else if (kind === "receipt" && data.interaction === state.interaction.id) {
      const node = state.nodes.get(data.message);
      if (!node) return;
      node.dataset.status = data.status;
      const receipt = node.querySelector(".receipt");
      if (receipt) receipt.replaceWith(receiptNode({ status: data.status, reasons: data.reasons }));
      if (data.status === "failed" && !state.list.querySelector(`[data-error-for="${CSS.escape(data.message)}"]`)) {
        node.after(errorNode({ id: data.message, reasons: data.reasons }));
      }
    } else if (kind === "interaction" && data.id === state.interaction.id && data.change === "ended") {
      state.list.append(centred("The session has ended.", "session-end"));
    }
  }

  /* The contact was edited (contact.js): its new name on the customer's messages. */
  function setContact(contact) {
    if (!state.interaction || !contact || contact.id !== state.interaction.contact) return;
    state.name = customerName(contact);
    state.list.setAttribute("aria-label", `Messages with ${state.name}`);
    for (const who of state.container.querySelectorAll(".msg-in .msg-who")) who.textContent = state.name;
  }

  function close() {
    if (state.container) {
      state.container.replaceChildren();
      state.container.classList.remove("transcript-window");
    }
    state.interaction = null;
    state.nodes = new Map();
    if (DMS.contacts) DMS.contacts.clear();
  }

  window.DMS = window.DMS || {};
  DMS.Transcript = { open, onEvent, close, setContact };
})();
