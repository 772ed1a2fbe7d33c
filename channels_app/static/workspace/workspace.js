/* The workspace's shell (templates/workspace/index.html): who the agent is, ready / not ready per media,
   capacity, offers, the list of the agent's conversations, the event stream, the actions bar and the desktop
   options. It creates window.DMS before the other modules (transcript.js, reply.js, contact.js) run, and opens
   a conversation in them:

     DMS.api(path, {method, body, form}) -> Promise of the parsed JSON; throws an Error with .status, .body
     DMS.options           {"<option name>": value} (section interaction-workspace, global values)
     DMS.optionsFor(ch)    the same with the values channel `ch` sets for itself
     DMS.me                GET /api/agents/me/ + {id, username, display_name, permissions}
     DMS.events            an EventTarget: every stream event again, as CustomEvent(kind, {detail: data})
     DMS.format(fmt, vals) a display format ("$Contact.FirstName$ ...|$Interaction.MainParty$") filled in
     DMS.flash(text)       a short notice at the bottom of the page
     DMS.open              the interaction open now (GET /api/interactions/{id}/), or null

   Only the public API is used; the page holds no other state than what it read there. */
"use strict";

(function () {
  const readJson = (id) => JSON.parse(document.getElementById(id).textContent);
  const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

  async function api(path, { method = "GET", body, form } = {}) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
    if (form !== undefined) {
      init.body = form;  // FormData: the browser sets the multipart boundary
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let parsed = null;
    if (text) {
      try { parsed = JSON.parse(text); } catch (_) { parsed = text; }
    }
    if (response.status === 401) {  // signed out meanwhile (another tab, the session expired): sign in again
      window.location.assign(`/admin/login/?next=${encodeURIComponent("/workspace/" + location.hash)}`);
    }
    if (!response.ok) {
      const error = new Error(describeError(parsed) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      error.body = parsed;
      throw error;
    }
    return parsed;
  }

  /* DRF's error bodies: {"detail": "..."} or {"field": ["..."]}: one line a person can read. */
  function describeError(body) {
    if (!body || typeof body !== "object") return typeof body === "string" ? body.slice(0, 200) : "";
    if (typeof body.detail === "string") return body.detail;
    return Object.entries(body).map(([field, problems]) => {
      const text = Array.isArray(problems) ? problems.join(" ") : (typeof problems === "object" ? JSON.stringify(problems) : String(problems));
      return field === "non_field_errors" ? text : `${field}: ${text}`;
    }).join("; ");
  }

  const options = readJson("workspace-options");
  const channelOptions = readJson("workspace-channel-options");

  /* A display format of the catalog (display-format.*, interaction.window-title, toast.window-title):
     alternatives separated by | — the first in which some field code has a value wins, its codes without a
     value left out — for the whole text or inside parentheses; $Object.Field$ codes are filled from `values`
     ({"Contact.FirstName": "Ann", ...}). */
  function format(pattern, values) {
    const CODE = /\$([A-Za-z_]+\.[A-Za-z0-9_.]+)\$/g;
    const has = (code) => values[code] !== undefined && values[code] !== null && String(values[code]).trim() !== "";
    const fill = (alternatives) => {
      for (const alternative of alternatives.split("|")) {
        const codes = [...alternative.matchAll(CODE)].map((match) => match[1]);
        if (codes.length && !codes.some(has)) continue;
        const text = alternative.replace(CODE, (_, code) => (has(code) ? String(values[code]).trim() : ""))
          .replace(/\s+/g, " ").trim();
        if (text) return text;
      }
      return "";
    };
    values = Object.assign({}, values);
    let groups = 0;
    const grouped = String(pattern || "").replace(/\(([^()]*)\)/g, (_, inner) => {
      const code = `__group.${groups++}`;  // a group counts as a code, with its text as value
      values[code] = fill(inner);
      return `$${code}$`;
    });
    return fill(grouped);
  }

  /* The modules' one way to build an element: attributes (`class`, `text`, `on<event>`; false/null left out) and
     children (false/null left out). */
  const el = (tag, attributes = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
    return node;
  };

  window.DMS = {
    el,
    listOf: (body) => (Array.isArray(body) ? body : (body && body.results) || []),
    api,
    describeError,
    options,
    optionsFor: (channelId) => Object.assign({}, options, channelOptions[channelId] || {}),
    me: readJson("workspace-me"),
    events: new EventTarget(),
    format,
    flash: (text) => flash(text),
    open: null,
  };

  /* --------------------------------------------------------------------------------------------------- */
  const $ = (selector, root = document) => root.querySelector(selector);

  let flashTimer = null;
  function flash(text, tone = "info") {
    const box = $("#flash");
    box.textContent = text;
    box.dataset.tone = tone;
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  const state = {
    conversations: new Map(),  // interaction id -> item of GET /api/agents/me/interactions/
    offers: new Map(),         // offer id -> {offer, node, timer}
    contacts: new Map(),       // contact id -> GET /api/contacts/{id}/ (offers' previews)
    openId: null,
    dispositions: null,
  };

  /* ---- names and titles ---------------------------------------------------------------------------- */
  function contactValues(contact, interaction) {
    const values = {};
    if (contact) {
      Object.assign(values, {
        "Contact.FirstName": contact.first_name, "Contact.LastName": contact.last_name,
        "Contact.EmailAddress": contact.email, "Contact.PhoneNumber": contact.phone_number,
        "Contact._msg_ProfileNickname": contact.nickname,
      });
      for (const [name, value] of Object.entries(contact.attributes || {})) values[`Contact.${name}`] = value;
    }
    if (interaction) {
      const userData = interaction.user_data || {};
      for (const [name, value] of Object.entries(userData)) {
        if (typeof value !== "object") values[`Interaction.${name}`] = value;
      }
      values["Interaction.MainParty"] = (contact && (contact.phone_number || contact.email)) || interaction.client_id;
      values["Interaction.Type"] = mediaName(mediaOf(interaction));
      values["Interaction.Queue"] = interaction.queue;
      values["Party.DisplayName"] = userData.FirstName ? `${userData.FirstName} ${userData.LastName || ""}` : interaction.client_id;
    }
    return values;
  }

  const MEDIA_NAMES = { whatsapp: "WhatsApp", sms: "SMS", email: "E-mail", abc: "Apple Messages" };

  function mediaOf(interaction) {
    return interaction.media || "";
  }

  function mediaName(media) {
    return MEDIA_NAMES[media] || media || "";
  }

  const channels = new Map();  // channel id -> GET /api/channels/{id}/ (its media)

  async function withMedia(interaction) {
    if (interaction && !interaction.media) {
      if (!channels.has(interaction.channel)) {
        channels.set(interaction.channel, api(`/api/channels/${encodeURIComponent(interaction.channel)}/`).catch(() => null));
      }
      const channel = await channels.get(interaction.channel);
      interaction.media = channel ? channel.media_type : "";
    }
    return interaction;
  }

  function customerName(contact, interaction) {
    return format(options["display-format.customer-name-format"], contactValues(contact, interaction))
      || (interaction && interaction.client_id) || "Customer";
  }

  /* interaction.window-title or toast.window-title; $Window.Title$ is the application's title ("Workspace")
     in the browser's title, nothing on the page itself. */
  function windowTitle(optionName, contact, interaction, application = "") {
    const values = contactValues(contact, interaction);
    values["Window.Title"] = application;
    return format(options[optionName], values) || customerName(contact, interaction);
  }

  async function contactOf(contactId) {
    if (contactId === null || contactId === undefined) return null;
    if (!state.contacts.has(contactId)) {
      state.contacts.set(contactId, api(`/api/contacts/${contactId}/`).catch(() => null));
    }
    return state.contacts.get(contactId);
  }

  /* ---- ready and capacity -------------------------------------------------------------------------- */
  function showAgentState(agent) {
    Object.assign(DMS.me, { ready: agent.ready, capacity: agent.capacity, assigned: agent.assigned });
    for (const box of document.querySelectorAll('#ready input[name="ready"]')) {
      box.checked = Boolean(agent.ready[box.value]);
      const label = box.closest("label");
      label.dataset.ready = box.checked ? "yes" : "no";
      label.querySelector(".ready-state").textContent = box.checked ? " ready" : " not ready";
      label.title = `${box.checked ? "Ready" : "Not ready"} for ${mediaName(box.value)}: click to change`;
    }
    $("#capacity").value = agent.capacity;
    $("#assigned-count").textContent = agent.assigned;
  }

  function setUpAgentState() {
    for (const box of document.querySelectorAll('#ready input[name="ready"]')) {
      box.addEventListener("change", async () => {
        try {
          showAgentState(await api("/api/agents/me/", { method: "PATCH", body: { ready: { [box.value]: box.checked } } }));
        } catch (error) {
          box.checked = !box.checked;
          flash(error.message, "error");
        }
      });
    }
    $("#capacity").addEventListener("change", async (event) => {
      const capacity = Number(event.target.value);
      try {
        showAgentState(await api("/api/agents/me/", { method: "PATCH", body: { capacity } }));
      } catch (error) {
        event.target.value = DMS.me.capacity;
        flash(error.message, "error");
      }
    });
    showAgentState(DMS.me);
  }

  /* ---- offers -------------------------------------------------------------------------------------- */
  async function showOffer(offer) {
    if (state.offers.has(offer.id)) return;
    const entry = { offer, node: null, timer: null };
    state.offers.set(offer.id, entry);
    const [contact, interaction] = await Promise.all([
      contactOf(offer.contact), api(`/api/interactions/${offer.interaction}/`).then(withMedia).catch(() => null),
    ]);
    if (!state.offers.has(offer.id)) return;  // withdrawn meanwhile
    const title = windowTitle("toast.window-title", contact, interaction);
    const kind = offer.subtype === "InternalConferenceInvite" ? "Conference invitation"
      : offer.kind === "transfer" ? "Transfer" : "New interaction";
    const caseData = interaction ? caseDataOf(interaction) : [];
    const countdown = el("span", { class: "offer-countdown", "aria-hidden": "true" });
    const node = el("article", { class: "offer", role: "alertdialog", "aria-labelledby": `offer-${offer.id}-title`,
                                 "aria-describedby": `offer-${offer.id}-preview`, "data-offer": offer.id, tabindex: "-1" },
      el("header", {},
        el("strong", { id: `offer-${offer.id}-title`, text: `${kind}: ${title}` }), countdown),
      el("p", { class: "offer-meta", text: [interaction ? mediaName(mediaOf(interaction)) : "", offer.queue ? `queue ${offer.queue}` : ""].filter(Boolean).join(" · ") }),
      el("p", { class: "offer-preview", id: `offer-${offer.id}-preview`, text: offer.preview || "(no text)" }),
      caseData.length ? el("dl", { class: "offer-case" }, ...caseData.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })])) : null,
      el("div", { class: "offer-buttons" },
        el("button", { type: "button", class: "primary", "data-answer": "accept", text: "Accept", "aria-keyshortcuts": "Alt+A",
                       onclick: () => answerOffer(offer.id, "accept") }),
        el("button", { type: "button", "data-answer": "reject", text: "Reject", "aria-keyshortcuts": "Alt+R",
                       onclick: () => answerOffer(offer.id, "reject") })),
      el("p", { class: "offer-keys muted", text: "Alt+A accepts, Alt+R rejects." }));
    entry.node = node;
    $("#offers").append(node);
    const tick = () => {
      const left = Math.max(0, Math.round((Date.parse(offer.expires_at) - Date.now()) / 1000));
      countdown.textContent = `${left} s`;
      if (left <= 0) removeOffer(offer.id, "expired");
    };
    tick();
    entry.timer = setInterval(tick, 1000);
    document.title = windowTitle("toast.window-title", contact, interaction, "— Workspace");
  }

  function caseDataOf(interaction) {
    const userData = interaction.user_data || {};
    return Object.entries(userData)
      .filter(([name, value]) => !name.startsWith("_") && value !== null && typeof value !== "object" && String(value).trim())
      .slice(0, 8).map(([name, value]) => [name, String(value)]);
  }

  function removeOffer(offerId, why) {
    const entry = state.offers.get(offerId);
    if (!entry) return;
    clearInterval(entry.timer);
    state.offers.delete(offerId);
    if (entry.node) entry.node.remove();
    if (why === "expired" || why === "withdrawn") flash(`The offer was ${why}.`);
    document.title = state.openId ? document.title : "Workspace";
  }

  async function answerOffer(offerId, answer) {
    const entry = state.offers.get(offerId);
    if (!entry) return;
    for (const button of entry.node ? entry.node.querySelectorAll("button") : []) button.disabled = true;
    try {
      const result = await api(`/api/offers/${offerId}/${answer}/`, { method: "POST" });
      removeOffer(offerId, answer);
      if (answer === "accept") {
        await refreshConversations();
        openConversation(result.id);
      }
    } catch (error) {
      removeOffer(offerId, error.status === 409 ? "gone" : "error");
      flash(error.status === 409 ? "That offer is no longer yours to answer." : error.message, "error");
    }
  }

  function oldestOffer() {
    const first = state.offers.values().next();
    return first.done ? null : first.value.offer.id;
  }

  /* ---- the list of conversations ------------------------------------------------------------------- */
  async function refreshConversations() {
    const items = await api("/api/agents/me/interactions/");
    state.conversations = new Map(items.map((item) => [item.id, item]));
    renderConversations();
  }

  function renderConversations() {
    const list = $("#conversations");
    list.replaceChildren();
    for (const item of state.conversations.values()) {
      const name = customerName(item.contact_details, item);
      const unread = item.id === state.openId ? 0 : item.unread || 0;  // the open one is being read
      const link = el("a", { href: `#${item.id}`, "data-interaction": item.id,
                             "aria-current": item.id === state.openId ? "true" : null,
                             onclick: (event) => { event.preventDefault(); openConversation(item.id); } },
        el("span", { class: "conversation-name", text: name }),
        el("span", { class: "conversation-media", text: mediaName(item.media) }),
        unread ? el("span", { class: "unread", "aria-label": `${unread} unread`, text: String(unread) }) : null,
        el("span", { class: "waiting", "data-waiting-since": item.waiting_since || "" }),
        el("span", { class: "conversation-last muted", text: item.last_message ? item.last_message.text.slice(0, 80) : "" }));
      list.append(el("li", { class: item.conference ? "conference" : null }, link));
    }
    $("#no-conversations").hidden = state.conversations.size > 0;
    $("#assigned-count").textContent = [...state.conversations.values()].filter((item) => !item.conference).length;
    tickWaiting();
  }

  /* The customer's waiting time, and the pending-response indicator of the option
     pending-response-to-customer: green, yellow after the first interval, flashing red after the second. */
  function waitingTone(seconds) {
    const [yellow, red] = options["whatsappsession.pending-response-to-customer"] || [30, 50];
    return seconds >= red ? "red" : seconds >= yellow ? "yellow" : "green";
  }

  function describeWait(seconds) {
    if (seconds < 60) return `${seconds} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  }

  function tickWaiting() {
    const now = Date.now();
    for (const span of document.querySelectorAll("#conversations .waiting")) {
      const since = span.dataset.waitingSince;
      if (!since) { span.textContent = ""; span.removeAttribute("data-tone"); continue; }
      const seconds = Math.max(0, Math.round((now - Date.parse(since)) / 1000));
      span.textContent = `waiting ${describeWait(seconds)}`;
      span.dataset.tone = waitingTone(seconds);
    }
    const pending = $("#pending-response");
    const open = state.openId && state.conversations.get(state.openId);
    if (open && open.waiting_since) {
      const seconds = Math.max(0, Math.round((now - Date.parse(open.waiting_since)) / 1000));
      pending.hidden = false;
      pending.dataset.tone = waitingTone(seconds);
      pending.textContent = `The customer has waited ${describeWait(seconds)} for an answer`;
    } else {
      pending.hidden = true;
    }
  }

  /* ---- the open conversation ----------------------------------------------------------------------- */
  const modules = () => [DMS.Transcript, DMS.Reply, DMS.Contact].filter(Boolean);

  async function openConversation(interactionId) {
    let interaction;
    try {
      interaction = await api(`/api/interactions/${interactionId}/`);
    } catch (error) {
      flash(error.message, "error");
      return;
    }
    closeConversation();
    state.openId = interaction.id;
    DMS.open = interaction;
    const item = state.conversations.get(interaction.id);
    if (item) interaction.media = item.media;
    await withMedia(interaction);
    const contact = item ? item.contact_details : await contactOf(interaction.contact);
    $("#nothing-open").hidden = true;
    const section = $("#conversation");
    section.hidden = false;
    section.dataset.interaction = interaction.id;
    section.dataset.state = interaction.state;
    $("#conversation-title").textContent = windowTitle("interaction.window-title", contact, interaction);
    $("#conversation-meta").textContent = [mediaName(interaction.media), interaction.channel, interaction.queue ? `queue ${interaction.queue}` : "",
      item && item.conference ? "conference" : "", interaction.state === "ended" ? "ended" : ""].filter(Boolean).join(" · ");
    // An e-mail thread's subject (the customer's first e-mail's; the replies go as "Re: " and it).
    const subject = interaction.media === "email" ? String((interaction.user_data || {}).Subject || "") : "";
    $("#conversation-subject").hidden = !subject;
    $("#conversation-subject").textContent = subject ? `Subject: ${subject}` : "";
    document.title = windowTitle("interaction.window-title", contact, interaction, "— Workspace");
    if (DMS.Transcript) DMS.Transcript.open($("#transcript"), interaction);
    if (DMS.Reply) DMS.Reply.open($("#reply"), interaction);
    if (DMS.Contact) DMS.Contact.open($("#contact"), interaction);
    renderConversations();
    updateActions(interaction);
    if (location.hash !== `#${interaction.id}`) history.replaceState(null, "", `#${interaction.id}`);
  }

  function closeConversation() {
    if (!state.openId) return;
    for (const module of modules()) { if (module.close) module.close(); }
    state.openId = null;
    DMS.open = null;
    $("#conversation").hidden = true;
    $("#nothing-open").hidden = false;
    document.title = "Workspace";
  }

  function updateActions(interaction) {
    const ended = interaction.state === "ended";
    const item = state.conversations.get(interaction.id);
    const holder = interaction.assigned_to === DMS.me.id;
    for (const button of document.querySelectorAll("#actions button")) {
      const action = button.dataset.action;
      button.disabled = (ended && action !== "note" && action !== "session")
        || ((action === "transfer" || action === "conference" || action === "hold") && !holder)
        || (action === "done" && !holder && !(item && !item.conference));
    }
  }

  /* ---- new message: blinking and focus (new-message-blinking, -duration, focus-on-new-messages) ------ */
  function blink(interactionId) {
    if (!options["whatsappsession.new-message-blinking"]) return;
    const seconds = options["whatsappsession.new-message-blinking-duration"] || 3;
    const targets = [document.querySelector(`#conversations a[data-interaction="${interactionId}"]`)];
    if (interactionId === state.openId) targets.push($("#conversation-header"));
    for (const target of targets.filter(Boolean)) {
      target.classList.remove("blinking");
      void target.offsetWidth;  // restart the animation
      target.style.setProperty("--blink-seconds", `${seconds}s`);
      target.classList.add("blinking");
      setTimeout(() => target.classList.remove("blinking"), seconds * 1000);
    }
  }

  function focusNewMessage() {
    if (!options["whatsappsession.focus-on-new-messages"]) return;
    const transcript = $("#transcript");
    transcript.scrollTop = transcript.scrollHeight;
    const last = transcript.lastElementChild;
    if (last && last.scrollIntoView) last.scrollIntoView({ block: "end" });
  }

  /* ---- the event stream ---------------------------------------------------------------------------- */
  const connection = { source: null, lost: false, opened: false, lastId: "" };

  let connectionTimer = null;
  function showConnection(stateName, text) {
    const box = $("#connection");
    box.dataset.state = stateName;
    box.textContent = text;
    clearTimeout(connectionTimer);
    if (stateName === "restored") connectionTimer = setTimeout(() => showConnection("connected", "Connected"), 8000);
  }

  /* The browser reconnects by itself with Last-Event-ID; when the server refused the stream (CLOSED), a new
     EventSource resumes after the last event seen (?last_event_id=): nothing is lost either way. */
  function connect() {
    const resume = connection.lastId ? `?last_event_id=${encodeURIComponent(connection.lastId)}` : "";
    const source = new EventSource(`/api/agents/me/events/${resume}`);
    connection.source = source;
    source.addEventListener("open", () => {
      if (connection.lost) {
        showConnection("restored", "Connected again");
        refreshConversations().catch(() => {});
        refreshOffers().catch(() => {});
      } else {
        showConnection("connected", "Connected");
      }
      connection.lost = false;
      connection.opened = true;
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (signed out, or a 4xx): the browser will not retry by itself.
        connection.lost = true;
        showConnection("lost", "Disconnected — reconnecting…");
        setTimeout(connect, 3000);
        return;
      }
      connection.lost = true;  // CONNECTING: the browser reconnects with Last-Event-ID by itself
      showConnection("lost", "Connection lost — reconnecting…");
    });
    for (const kind of ["offer", "offer_withdrawn", "message", "receipt", "interaction"]) {
      source.addEventListener(kind, (event) => {
        if (event.lastEventId) connection.lastId = event.lastEventId;
        let data;
        try { data = JSON.parse(event.data); } catch (_) { return; }
        handleEvent(kind, data);
        DMS.events.dispatchEvent(new CustomEvent(kind, { detail: data }));
      });
    }
  }

  function handleEvent(kind, data) {
    if (kind === "offer") {
      showOffer(data);
    } else if (kind === "offer_withdrawn") {
      removeOffer(data.id, data.state === "expired" ? "expired" : "withdrawn");
    } else if (kind === "message" || kind === "receipt") {
      const interactionId = data.interaction;
      if (interactionId === state.openId) {
        for (const module of modules()) { if (module.onEvent) module.onEvent(kind, data); }
      }
      if (kind === "message") {
        const item = state.conversations.get(interactionId);
        if (item) {
          item.last_message = { text: data.text || "", direction: data.direction, created_at: data.created_at };
          if (data.direction === "inbound") {
            item.unread = (item.unread || 0) + 1;  // as the API counts: since the last answer
            if (!item.waiting_since) item.waiting_since = data.created_at;
          } else {
            item.unread = 0;
            item.waiting_since = null;
          }
          renderConversations();
        } else {
          refreshConversations().catch(() => {});
        }
        if (data.direction === "inbound") {
          blink(interactionId);
          if (interactionId === state.openId) focusNewMessage();
        }
      }
    } else if (kind === "interaction") {
      if (data.id === state.openId) {
        for (const module of modules()) { if (module.onEvent) module.onEvent(kind, data); }
        if (data.change === "ended" || (data.assigned_to !== DMS.me.id && data.change === "transferred")) {
          flash(data.change === "ended" ? "The conversation has ended." : "The conversation was transferred.");
        }
      }
      refreshConversations().then(() => {
        if (state.openId && !state.conversations.has(state.openId) && data.id === state.openId
            && (data.change === "ended" || data.change === "transferred")) {
          closeConversation();
        } else if (data.id === state.openId && DMS.open) {
          DMS.open.state = data.state;
          DMS.open.assigned_to = data.assigned_to;
          updateActions(DMS.open);
        }
      }).catch(() => {});
    }
  }

  async function refreshOffers() {
    const pending = await api("/api/agents/me/offers/");
    const ids = new Set(pending.map((offer) => offer.id));
    for (const id of [...state.offers.keys()]) if (!ids.has(id)) removeOffer(id, "withdrawn");
    for (const offer of pending) showOffer(offer);
  }

  /* ---- the actions bar ----------------------------------------------------------------------------- */
  async function agentsForPicking() {
    const agents = await api(`/api/agents/?interaction=${encodeURIComponent(state.openId)}`);
    return agents.filter((agent) => agent.id !== DMS.me.id);
  }

  const rows = (page) => (Array.isArray(page) ? page : (page && page.results) || []);  // a list, or a page of one

  function fillSelect(select, entries) {
    select.replaceChildren(...entries.map(([value, text]) => el("option", { value, text })));
  }

  function dialogError(dialog, text) { dialog.querySelector(".dialog-error").textContent = text || ""; }

  /* Show a dialog; `submit(form)` runs on OK and resolves when done (an error keeps the dialog open). */
  function runDialog(id, submit) {
    const dialog = document.getElementById(id);
    const form = dialog.querySelector("form");
    dialogError(dialog, "");
    dialog.onclose = null;
    form.onsubmit = async (event) => {
      const button = event.submitter;
      if (!button || button.value !== "ok") return;  // Cancel closes (method=dialog)
      event.preventDefault();
      button.disabled = true;
      try {
        await submit(form);
        dialog.close();
      } catch (error) {
        dialogError(dialog, error.message);
      } finally {
        button.disabled = false;
      }
    };
    dialog.showModal();
    const first = dialog.querySelector("select, textarea, input:not([type=radio])");
    if (first) first.focus();
  }

  async function actionTransfer() {
    const dialog = $("#dialog-transfer");
    const [agents, queues] = await Promise.all([agentsForPicking(), api("/api/queues/").then(rows).catch(() => [])]);
    const tenant = DMS.open && DMS.open.queue ? DMS.open.queue.split(":")[0] : null;
    fillSelect(dialog.querySelector('[name="agent"]'), agents.map((agent) => [agent.id, agentLabel(agent)]));
    fillSelect(dialog.querySelector('[name="queue"]'),
      queues.filter((queue) => queue.routing === "workspace" && (!tenant || String(queue.tenant) === tenant))
        .map((queue) => [queue.key, `${queue.key} (${queue.waiting} waiting)`]));
    runDialog("dialog-transfer", async (form) => {
      const toQueue = form.target.value === "queue";
      const body = toQueue ? { queue: form.queue.value } : { agent: Number(form.agent.value) };
      await api(`/api/interactions/${state.openId}/transfer/`, { method: "POST", body });
      flash(toQueue ? `Transferred to queue ${form.queue.value}: it stays with you until it is accepted.`
        : "Transfer offered: the conversation stays with you until it is accepted.");
    });
  }

  function agentLabel(agent) {
    const ready = Object.entries(agent.ready || {}).filter(([, on]) => on).map(([media]) => media);
    return `${agent.display_name} (${ready.length ? `ready: ${ready.join(", ")}` : "not ready"})`;
  }

  async function actionConference() {
    const dialog = $("#dialog-conference");
    const agents = await agentsForPicking();
    fillSelect(dialog.querySelector('[name="agent"]'), agents.map((agent) => [agent.id, agentLabel(agent)]));
    runDialog("dialog-conference", async (form) => {
      await api(`/api/interactions/${state.openId}/conference/`, { method: "POST", body: { agent: Number(form.agent.value) } });
      flash("Invitation sent.");
    });
  }

  async function actionNote() {
    const list = $("#notes-list");
    const notes = await api(`/api/interactions/${state.openId}/notes/`);
    list.replaceChildren(...notes.map((note) => el("li", {},
      el("span", { class: "muted", text: `${note.author || "?"}, ${new Date(note.created_at).toLocaleString()}: ` }),
      el("span", { text: note.text }))));
    $("#dialog-note").querySelector("textarea").value = "";
    runDialog("dialog-note", async (form) => {
      await api(`/api/interactions/${state.openId}/notes/`, { method: "POST", body: { text: form.text.value } });
      flash("Note added.");
    });
  }

  /* The values of the Disposition Code business attribute (POST .../end/ takes their names). */
  async function dispositionValues() {
    if (!state.dispositions) {
      const attributes = rows(await api("/api/business-attributes/?type=disposition_code"));
      state.dispositions = attributes.flatMap((attribute) => (attribute.values || [])
        .slice().sort((a, b) => a.order - b.order)
        .map((value) => [value.name, value.display_name || value.name]));
    }
    return state.dispositions;
  }

  async function actionDone() {
    const dialog = $("#dialog-done");
    const values = await dispositionValues();
    fillSelect(dialog.querySelector('[name="disposition"]'), [["", "(none)"], ...values]);
    runDialog("dialog-done", async (form) => {
      const body = form.disposition.value ? { disposition: form.disposition.value } : {};
      const ended = await api(`/api/interactions/${state.openId}/end/`, { method: "POST", body });
      flash(ended.disposition ? `Done: ${ended.disposition}.` : "Done.");
      state.conversations.delete(ended.id);
      closeConversation();
      renderConversations();
    });
  }

  async function actionSession() {
    const dialog = $("#dialog-session");
    const channels = await api(`/api/interactions/${state.openId}/session-channels/`);
    fillSelect(dialog.querySelector('[name="channel"]'),
      channels.map((channel) => [channel.channel_id, `${channel.name} (${channel.media_type})`]));
    dialog.querySelector("textarea").value = "";
    runDialog("dialog-session", async (form) => {
      const created = await api(`/api/interactions/${state.openId}/sessions/`, {
        method: "POST", body: { channel: form.channel.value, text: form.text.value } });
      flash(created.sent_as === "notification" ? "New session started: the text went as the notification template."
        : "New session started.");
      await refreshConversations();
    });
  }

  /* whatsappsession.on-hold-queue: Hold moves the conversation to that queue (a transfer to it: it stays
     with the agent until someone there accepts it). */
  async function actionHold() {
    const queue = options["whatsappsession.on-hold-queue"];
    await api(`/api/interactions/${state.openId}/transfer/`, { method: "POST", body: { queue } });
    flash(`Placed in the on-hold queue ${queue}: it stays with you until it is accepted there.`);
  }

  /* workbin.whatsappsession.in-progress: the list of the agent's conversations is that workbin. */
  function setUpWorkbin() {
    const workbin = options["workbin.whatsappsession.in-progress"];
    if (workbin) {
      const label = $("#workbin");
      label.textContent = `Workbin: ${workbin}`;
      label.hidden = false;
    }
    const holdQueue = options["whatsappsession.on-hold-queue"];
    const hold = $('#actions button[data-action="hold"]');
    hold.hidden = !holdQueue;
    hold.title = holdQueue ? `Place the conversation in the queue ${holdQueue}` : "";
  }

  function setUpActions() {
    setUpWorkbin();
    const actions = { transfer: actionTransfer, conference: actionConference, note: actionNote, done: actionDone,
                      session: actionSession, hold: actionHold };
    for (const button of document.querySelectorAll("#actions button")) {
      button.addEventListener("click", () => {
        if (!state.openId) return;
        actions[button.dataset.action]().catch((error) => flash(error.message, "error"));
      });
    }
    for (const dialog of document.querySelectorAll("dialog")) {
      const radios = dialog.querySelectorAll('input[name="target"]');
      const sync = () => {
        for (const name of ["agent", "queue"]) {
          const select = dialog.querySelector(`select[name="${name}"]`);
          if (select && radios.length) select.closest("label").hidden = dialog.querySelector('input[name="target"]:checked').value !== name;
        }
      };
      for (const radio of radios) radio.addEventListener("change", sync);
      if (radios.length) sync();
    }
  }

  /* ---- keyboard: Alt+A accepts the oldest offer, Alt+R rejects it ---------------------------------- */
  function setUpKeys() {
    document.addEventListener("keydown", (event) => {
      if (!event.altKey || event.ctrlKey || event.metaKey) return;
      const key = event.key.toLowerCase();
      if (key !== "a" && key !== "r") return;
      const offerId = oldestOffer();
      if (offerId === null) return;
      event.preventDefault();
      answerOffer(offerId, key === "a" ? "accept" : "reject");
    });
  }

  /* ---- start ----------------------------------------------------------------------------------------- */
  async function start() {
    setUpAgentState();
    setUpActions();
    setUpKeys();
    connect();
    try {
      await Promise.all([refreshConversations(), refreshOffers()]);
    } catch (error) {
      flash(error.message, "error");
    }
    setInterval(tickWaiting, 1000);
    const wanted = location.hash.slice(1);
    if (wanted && state.conversations.has(wanted)) openConversation(wanted);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
