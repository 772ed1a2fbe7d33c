/* The reply area of the interaction window (WhatsApp guide: "Emojis", "Sending outbound messages", "Automatic
   notification messages"): the text, with the `max-text-message-size` notice below it counted in bytes of UTF-8
   as one types; Enter sends, Shift+Enter is a new line; emojis (GET /api/emojis/); the standard response library
   searched by name and category, rendered with its field codes filled from the contact and the case data
   (POST /api/standard-responses/{id}/render/), structured content previewed as the customer will see it; files
   (WhatsApp - Can Send Files; `two-step-attachment-upload`: previewed first, or sent as soon as chosen); the
   customer's 24-hour window counting down and, once it has closed, what the text will be sent as (the default
   notification template) before it is sent.

   DMS.Reply.open(container, interaction) / .onEvent(kind, data) / .close(). */
"use strict";

(function () {
  const el = DMS.el;
  const encoder = new TextEncoder();
  const utf8Bytes = (text) => encoder.encode(text).length;
  const listOf = DMS.listOf;
  const can = (permission) => (DMS.me.permissions || []).includes(`channels_app.${permission}`);

  const state = { container: null, interaction: null, timer: null, response: null, file: null, emojis: null,
                  closesAt: null, contact: null };
  const parts = {};

  function sessionOption(name) {
    const kept = state.interaction.session_options || {};
    return name in kept ? kept[name] : DMS.optionsFor(state.interaction.channel)[name];
  }

  const isWhatsApp = () => state.interaction.media === "whatsapp";
  const isEmail = () => state.interaction.media === "email";

  /* ---- the size notice ----------------------------------------------------------------------------- */
  function limit() { return isEmail() ? null : Number(sessionOption("whatsappsession.max-text-message-size")); }

  function updateSize() {
    const text = parts.text.value;
    const size = utf8Bytes(text);
    const max = limit();
    parts.size.textContent = max ? `${size} / ${max} bytes` : `${size} bytes`;
    const over = max && size > max;
    parts.sizeNotice.hidden = !over;
    parts.sizeNotice.textContent = over
      ? `The message is ${size} bytes (UTF-8): ${size - max} over the maximum of ${max} bytes. Shorten it to send it.`
      : "";
    parts.text.setAttribute("aria-invalid", over ? "true" : "false");
    parts.send.disabled = Boolean(over) || (!text.trim() && !state.response && !state.file);
    updateWindowNotice();
  }

  /* ---- the 24-hour window ---------------------------------------------------------------------------- */
  function windowMinutes() {
    return sessionOption("whatsappsession.enable-free-msg-timespan-monitoring")
      ? Number(sessionOption("whatsappsession.free-msg-timespan")) : 1440;
  }

  const windowOpen = () => !isWhatsApp() || (state.closesAt !== null && Date.now() < state.closesAt);

  function describe(seconds) {
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    return hours ? `${hours} h ${String(minutes).padStart(2, "0")} min` : `${minutes} min ${String(seconds % 60).padStart(2, "0")} s`;
  }

  function notificationText(text) {
    const template = sessionOption("whatsappsession.default-notification-text");
    if (!sessionOption("whatsappsession.enable-free-msg-timespan-monitoring") || !template) return null;
    return template.includes("{{1}}") ? template.replace("{{1}}", text) : `${template} ${text}`;
  }

  function updateWindowNotice() {
    if (!isWhatsApp()) { parts.window.hidden = true; parts.windowNotice.hidden = true; return; }
    parts.window.hidden = false;
    if (windowOpen()) {
      const seconds = Math.max(0, Math.round((state.closesAt - Date.now()) / 1000));
      parts.window.dataset.state = seconds < 3600 ? "closing" : "open";
      parts.window.textContent = `24-hour window: closes in ${describe(seconds)}`;
      parts.windowNotice.hidden = true;
      return;
    }
    parts.window.dataset.state = "closed";
    parts.window.textContent = "24-hour window: closed";
    const text = parts.text.value.trim();
    const wrapped = notificationText(text || "…");
    parts.windowNotice.hidden = false;
    parts.windowNotice.dataset.mode = wrapped ? "notification" : "refused";
    parts.windowNotice.replaceChildren(wrapped
      ? el("span", {}, "The customer's window has closed: your text will be sent as the notification template: ",
        el("q", { class: "notification-preview", text: wrapped }))
      : el("span", { text: "The customer's window has closed: only notifications (standard responses of type "
        + "notification) can be sent until the customer writes again." }));
  }

  /* ---- sending --------------------------------------------------------------------------------------- */
  async function send() {
    if (parts.send.disabled) return;
    const text = parts.text.value;
    const body = {};
    if (state.response && state.response.content_type !== "text") {
      body.standard_response_id = state.response.id;
      body.fields = fieldsForSending();
    } else if (text.trim() || !state.file) {
      body.text = text;  // a file alone goes without text
    }
    if (state.file) body.attachments = [state.file.id];
    parts.send.disabled = true;
    try {
      const sent = await DMS.api(`/api/interactions/${state.interaction.id}/messages/`, { method: "POST", body });
      if (DMS.Transcript) {
        // Shown at once; the stream's event of the same message replaces it (with its receipts after it).
        const payload = sent.payload || {};
        DMS.Transcript.onEvent("message", { ...sent, interaction: state.interaction.id,
          attachments: (payload.attachments || []).map((file) => ({ ...file, status: "stored" })),
          location: payload.location || null });
      }
      parts.text.value = "";
      clearResponse();
      clearFile();
      setStatus(sent.sent_as === "notification" ? "Sent as the notification template (the window had closed)." : "Sent.");
    } catch (error) {
      setStatus(error.message, true);
    }
    updateSize();
    parts.text.focus();
  }

  function setStatus(text, bad = false) {
    parts.status.textContent = text;
    parts.status.dataset.tone = bad ? "error" : "info";
  }

  /* ---- emojis ---------------------------------------------------------------------------------------- */
  function insertAtCursor(text) {
    const area = parts.text;
    const start = area.selectionStart ?? area.value.length;
    const end = area.selectionEnd ?? area.value.length;
    area.value = area.value.slice(0, start) + text + area.value.slice(end);
    area.selectionStart = area.selectionEnd = start + text.length;
    area.focus();
    updateSize();
  }

  async function toggleEmojis() {
    const open = parts.emojiPanel.hidden;
    parts.emojiPanel.hidden = !open;
    parts.emojiButton.setAttribute("aria-expanded", String(open));
    if (!open) return;
    if (!state.emojis) {
      state.emojis = await DMS.api(`/api/emojis/?channel=${encodeURIComponent(state.interaction.channel)}`).catch(() => []);
    }
    parts.emojiPanel.replaceChildren(...state.emojis.map((item) => el("button", {
      type: "button", class: "emoji", text: item.emoji, title: item.code, "aria-label": `Insert ${item.code}`,
      onclick: () => { insertAtCursor(item.emoji); toggleEmojis(); },
    })));
    const first = parts.emojiPanel.querySelector("button");
    if (first) first.focus();
  }

  /* ---- standard responses ---------------------------------------------------------------------------- */
  function contactFields(contact) {
    if (!contact) return {};
    const values = { Id: String(contact.id), FirstName: contact.first_name, LastName: contact.last_name,
                     PrimaryPhoneNumber: contact.phone_number, PrimaryEmailAddress: contact.email,
                     _msg_ProfileNickname: contact.nickname, ...(contact.attributes || {}) };
    return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== "" && value !== null && value !== undefined));
  }

  function caseData() {
    return Object.fromEntries(Object.entries(state.interaction.user_data || {})
      .filter(([name, value]) => !name.startsWith("_") && value !== null && typeof value !== "object"));
  }

  function agentFields() {
    const [first, ...rest] = String(DMS.me.display_name || DMS.me.username || "").split(" ");
    return { FirstName: first || "", LastName: rest.join(" "), UserName: DMS.me.username || "" };
  }

  function fieldsForSending() { return { Agent: agentFields(), CustomProperties: caseData() }; }

  function fieldsForRendering() {
    const interaction = state.interaction;
    return {
      Contact: contactFields(state.contact),
      Agent: agentFields(),
      CustomProperties: caseData(),
      Interaction: { Id: interaction.id, DateCreated: interaction.created_at, ToAddress: interaction.client_id },
    };
  }

  async function loadCategories() {
    if (parts.category.options.length > 1) return;
    const categories = listOf(await DMS.api("/api/standard-response-categories/").catch(() => []));
    for (const category of categories) parts.category.append(el("option", { value: category.id, text: category.path || category.name }));
  }

  async function searchResponses() {
    const query = new URLSearchParams();
    if (parts.search.value.trim()) query.set("search", parts.search.value.trim());
    if (parts.category.value) query.set("category", parts.category.value);
    const found = listOf(await DMS.api(`/api/standard-responses/?${query}`).catch((error) => { setStatus(error.message, true); return []; }));
    parts.results.replaceChildren(...found.slice(0, 50).map((response) => el("li", {},
      el("button", { type: "button", class: "response-pick", "data-response": response.id,
                     onclick: () => pickResponse(response) },
        el("strong", { text: response.name }),
        el("span", { class: "muted", text: ` · ${response.content_type}` }),
        el("span", { class: "response-body muted", text: (response.body || "").slice(0, 120) })))));
    if (!found.length) parts.results.append(el("li", { class: "muted", text: "No standard response matches." }));
  }

  async function toggleResponses() {
    const open = parts.responses.hidden;
    parts.responses.hidden = !open;
    parts.responsesButton.setAttribute("aria-expanded", String(open));
    if (!open) return;
    await loadCategories();
    await searchResponses();
    parts.search.focus();
  }

  async function pickResponse(response) {
    let rendered;
    try {
      rendered = await DMS.api(`/api/standard-responses/${response.id}/render/`,
        { method: "POST", body: { fields: fieldsForRendering() } });
    } catch (error) {
      setStatus(error.message, true);
      return;
    }
    parts.responses.hidden = true;
    parts.responsesButton.setAttribute("aria-expanded", "false");
    const missing = rendered.missing || [];
    if (response.content_type === "text") {
      insertAtCursor(String(rendered.payload.text || ""));
      setStatus(missing.length ? `Inserted; field codes without a value: ${missing.join(", ")}.`
        : `Inserted "${response.name}" with its field codes filled.`, missing.length > 0);
      return;
    }
    state.response = response;
    parts.preview.hidden = false;
    parts.preview.replaceChildren(...[
      el("div", { class: "preview-head" },
        el("strong", { text: `${response.name} (${response.content_type})` }),
        el("button", { type: "button", class: "linklike", text: "Remove", onclick: () => { clearResponse(); updateSize(); } })),
      structuredPreview(rendered.payload),
      missing.length ? el("p", { class: "preview-missing", role: "alert", text: `Field codes without a value: ${missing.join(", ")}` }) : null,
    ].filter(Boolean));
    setStatus("The standard response is shown as the customer will see it; Send sends it.");
    updateSize();
  }

  function clearResponse() {
    state.response = null;
    parts.preview.hidden = true;
    parts.preview.replaceChildren();
  }

  /* Structured content as the customer sees it: a header (text or file), the body, a footer, buttons or the
     list's button and rows, a carousel's cards. */
  function structuredPreview(payload) {
    const card = el("div", { class: "customer-view", "aria-label": "As the customer will see it" });
    const header = payload.header;
    if (header && typeof header === "object") {
      if (header.type === "text") card.append(el("p", { class: "cv-header", text: header.text || "" }));
      else if (header.url && header.type === "image") card.append(el("img", { class: "cv-image", src: header.url, alt: header.fileName || "header image" }));
      else card.append(el("p", { class: "cv-header muted", text: `[${header.type}: ${header.fileName || "file"}]` }));
    }
    const text = payload.text || payload.body || "";
    if (text) card.append(el("p", { class: "cv-body", text }));
    if (payload.footer) card.append(el("p", { class: "cv-footer muted", text: payload.footer }));
    const buttons = payload.buttons || payload.quickReplies || payload.replies || [];
    if (Array.isArray(buttons) && buttons.length) {
      card.append(el("div", { class: "cv-buttons" }, ...buttons.map((button) =>
        el("span", { class: "cv-button", text: button.title || button.text || button.id || "" }))));
    }
    if (payload.button || Array.isArray(payload.sections)) {
      card.append(el("span", { class: "cv-button", text: `☰ ${payload.button || "Options"}` }));
      for (const section of payload.sections || []) {
        const rows = el("ul", { class: "cv-rows" });
        for (const row of section.rows || []) {
          rows.append(el("li", {}, el("strong", { text: row.title || "" }), row.description ? el("span", { class: "muted", text: ` ${row.description}` }) : null));
        }
        card.append(el("p", { class: "cv-section", text: section.title || "" }), rows);
      }
    }
    const items = payload.items || payload.cards;
    if (Array.isArray(items)) {
      card.append(el("div", { class: "cv-carousel" }, ...items.map((item) => el("div", { class: "cv-card" },
        item.image && item.image.url ? el("img", { src: item.image.url, alt: item.title || "" }) : null,
        el("strong", { text: item.title || "" }), el("p", { text: item.subtitle || item.description || "" })))));
    }
    if (payload.template) {
      card.append(el("p", { class: "cv-template muted", text: `Template ${payload.template.name || payload.template.id || ""} (${payload.template.language || ""})` }));
    }
    return card;
  }

  /* ---- files ------------------------------------------------------------------------------------------ */
  const mayAttach = () => !isWhatsApp() || can("whatsapp_can_send_files");

  async function fileChosen() {
    const chosen = parts.fileInput.files[0];
    parts.fileInput.value = "";
    if (!chosen) return;
    const form = new FormData();
    form.append("file", chosen);
    form.append("name", chosen.name);
    setStatus(`Uploading ${chosen.name}…`);
    let uploaded;
    try {
      uploaded = await DMS.api("/api/attachments/", { method: "POST", form });
    } catch (error) {
      setStatus(error.message, true);
      return;
    }
    state.file = { id: uploaded.id, name: uploaded.name, size: uploaded.size, mime: uploaded.mime_type, url: uploaded.url };
    updateSize();
    if (!DMS.optionsFor(state.interaction.channel)["whatsappsession.two-step-attachment-upload"]) {
      await send();  // one step: the file goes as soon as it is chosen (with the text typed so far)
      return;
    }
    parts.file.hidden = false;
    parts.file.replaceChildren(...[
      String(uploaded.mime_type || "").startsWith("image/")
        ? el("img", { src: URL.createObjectURL(chosen), alt: uploaded.name, class: "file-thumbnail" }) : null,
      el("span", { text: `${uploaded.name} (${Math.max(1, Math.round(uploaded.size / 1024))} KB): Send sends it.` }),
      el("button", { type: "button", class: "linklike", text: "Remove", onclick: () => { clearFile(); updateSize(); } }),
    ].filter(Boolean));
    setStatus("The file is ready: check it, then Send.");
    updateSize();
  }

  function clearFile() {
    state.file = null;
    parts.file.hidden = true;
    parts.file.replaceChildren();
  }

  /* ---- the area ------------------------------------------------------------------------------------- */
  function build(container) {
    const id = (name) => `reply-${name}`;
    parts.window = el("p", { id: id("window"), class: "reply-window", role: "timer", "aria-live": "off" });
    parts.windowNotice = el("p", { id: id("window-notice"), class: "reply-window-notice", role: "status", hidden: true });
    parts.text = el("textarea", { id: id("text"), rows: "3", "aria-describedby": `${id("size")} ${id("size-notice")} ${id("window-notice")}`,
                                  placeholder: "Type a message — Enter sends, Shift+Enter starts a new line" });
    parts.size = el("span", { id: id("size"), class: "reply-size muted" });
    parts.sizeNotice = el("p", { id: id("size-notice"), class: "reply-size-notice", role: "alert", hidden: true });
    parts.send = el("button", { type: "button", class: "primary", id: id("send"), text: "Send", onclick: send });
    parts.emojiButton = el("button", { type: "button", id: id("emoji-button"), "aria-haspopup": "true", "aria-expanded": "false",
                                       "aria-controls": id("emojis"), title: "Emojis", text: "😊", onclick: toggleEmojis });
    parts.emojiPanel = el("div", { id: id("emojis"), class: "emoji-panel", role: "group", "aria-label": "Emojis", hidden: true });
    parts.responsesButton = el("button", { type: "button", id: id("responses-button"), "aria-expanded": "false",
                                           "aria-controls": id("responses"), text: "Standard responses", onclick: toggleResponses });
    parts.search = el("input", { type: "search", id: id("search"), placeholder: "Name or words" });
    parts.category = el("select", { id: id("category") }, el("option", { value: "", text: "Every category" }));
    parts.results = el("ul", { id: id("results"), class: "response-results", "aria-live": "polite" });
    parts.responses = el("div", { id: id("responses"), class: "responses-panel", role: "dialog", "aria-label": "Standard responses", hidden: true },
      el("div", { class: "responses-search" },
        el("label", { for: id("search"), text: "Search " }), parts.search,
        el("label", { for: id("category"), text: " Category " }), parts.category),
      parts.results);
    parts.preview = el("div", { id: id("preview"), class: "reply-preview", hidden: true });
    parts.fileInput = el("input", { type: "file", id: id("file-input"), class: "visually-hidden" });
    parts.fileLabel = el("label", { for: id("file-input"), class: "button-like", id: id("file-label"), text: "Attach file" });
    parts.file = el("div", { id: id("file"), class: "reply-file", hidden: true });
    parts.status = el("p", { id: id("status"), class: "reply-status", role: "status", "aria-live": "polite" });

    let searchTimer = null;
    parts.search.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(searchResponses, 250); });
    parts.search.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); searchResponses(); } });
    parts.category.addEventListener("change", searchResponses);
    parts.fileInput.addEventListener("change", fileChosen);
    parts.text.addEventListener("input", updateSize);
    parts.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send();
      }
    });
    for (const panel of [parts.emojiPanel, parts.responses]) {
      panel.addEventListener("keydown", (event) => {
        if (event.key !== "Escape") return;
        panel.hidden = true;
        parts.text.focus();
      });
    }

    container.replaceChildren(
      el("div", { class: "reply-top" }, parts.window),
      parts.windowNotice, parts.preview, parts.file,
      el("label", { for: id("text"), class: "visually-hidden", text: "Message to the customer" }),
      parts.text,
      el("div", { class: "reply-bar" },
        el("div", { class: "reply-tools" }, parts.emojiButton, parts.responsesButton, parts.fileInput, parts.fileLabel),
        parts.size, parts.send),
      parts.sizeNotice, parts.emojiPanel, parts.responses, parts.status);
  }

  async function open(container, interaction) {
    state.container = container;
    state.interaction = interaction;
    state.response = null;
    state.file = null;
    state.emojis = null;
    state.contact = null;
    state.closesAt = interaction.window_closes_at ? Date.parse(interaction.window_closes_at) : null;
    container.classList.add("reply-area");
    build(container);
    parts.fileLabel.hidden = !mayAttach();
    const ended = interaction.state === "ended";
    parts.text.disabled = ended;
    if (ended) setStatus("The session has ended: start a new session to write to the customer.");
    updateSize();
    clearInterval(state.timer);
    state.timer = setInterval(updateWindowNotice, 1000);
    if (!ended) parts.text.focus();
    DMS.contacts = DMS.contacts || new Map();
    if (interaction.contact !== null && interaction.contact !== undefined) {
      if (!DMS.contacts.has(interaction.contact)) {
        DMS.contacts.set(interaction.contact, DMS.api(`/api/contacts/${interaction.contact}/`).catch(() => null));
      }
      const contact = await DMS.contacts.get(interaction.contact);
      if (state.interaction === interaction) state.contact = contact;
    }
  }

  function onEvent(kind, data) {
    if (!state.interaction) return;
    if (kind === "message" && data.interaction === state.interaction.id && data.direction === "inbound") {
      // A customer message opens the window again: free messages for windowMinutes() from it.
      state.closesAt = Date.parse(data.created_at) + windowMinutes() * 60000;
      updateWindowNotice();
    } else if (kind === "interaction" && data.id === state.interaction.id && data.change === "ended") {
      state.interaction.state = "ended";
      parts.text.disabled = true;
      parts.send.disabled = true;
      setStatus("The session has ended.");
    }
  }

  function setContact(contact) { state.contact = contact; }

  function close() {
    clearInterval(state.timer);
    state.timer = null;
    if (state.container) {
      state.container.replaceChildren();
      state.container.classList.remove("reply-area");
    }
    state.interaction = null;
  }

  window.DMS = window.DMS || {};
  DMS.Reply = { open, onEvent, close, setContact };
})();
