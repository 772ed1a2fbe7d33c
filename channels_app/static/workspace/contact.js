/* The contact panel of the interaction window (issue 24, item 5): the contact's details as
   `contact.displayed-attributes` lists them, named by `display-format.case-name-format`; edit them
   (PATCH /api/contacts/{id}/, Contact - change); find a contact in the directory (`contact.directory-search-
   attributes` is the server's search: GET /api/contacts/?directory=, `contact.directory-displayed-columns` the
   columns); and the contact's history (GET /api/interactions/?contact=).

   DMS.Contact.open(container, interaction) / .close(). */
"use strict";

(function () {
  const el = DMS.el;
  const listOf = DMS.listOf;
  const names = (option) => String(DMS.options[option] || "").split(",").map((name) => name.trim()).filter(Boolean);
  const can = (permission) => (DMS.me.permissions || []).includes(`channels_app.${permission}`);

  /* Workspace's attribute names and the API's fields (the rest are the contact's `attributes`). */
  const FIELDS = { FirstName: "first_name", LastName: "last_name", PhoneNumber: "phone_number",
                   PrimaryPhoneNumber: "phone_number", EmailAddress: "email", PrimaryEmailAddress: "email",
                   _msg_ProfileNickname: "nickname", ClientId: "client_id" };
  const LABELS = { FirstName: "First name", LastName: "Last name", PhoneNumber: "Phone number", EmailAddress: "E-mail",
                   _msg_ProfileNickname: "Profile nickname", Title: "Title", ClientId: "Client id" };
  const READ_ONLY = new Set(["phone_number", "client_id"]);
  const label = (name) => LABELS[name] || name.replace(/^_+/, "").replace(/([a-z])([A-Z])/g, "$1 $2");
  const valueOf = (contact, name) => {
    const field = FIELDS[name];
    const value = field ? contact[field] : (contact.attributes || {})[name];
    return value === undefined || value === null ? "" : String(value);
  };

  const state = { container: null, interaction: null, contact: null, body: null };

  function caseName(contact) {
    const values = {};
    for (const name of ["FirstName", "LastName", "PhoneNumber", "EmailAddress", "_msg_ProfileNickname"]) {
      values[`Contact.${name}`] = valueOf(contact, name);
    }
    for (const [name, value] of Object.entries(contact.attributes || {})) values[`Contact.${name}`] = value;
    values["Interaction.MainParty"] = contact.phone_number || contact.email || contact.client_id || (state.interaction && state.interaction.client_id);
    const pattern = DMS.options["display-format.case-name-format"];
    return (DMS.format ? DMS.format(pattern, values) : "") || values["Interaction.MainParty"] || `Contact ${contact.id}`;
  }

  /* ---- details and edit ---------------------------------------------------------------------------- */
  function details(contact, { own }) {
    const list = el("dl", { class: "contact-details" });
    for (const name of names("contact.displayed-attributes")) {
      list.append(el("dt", { text: label(name) }), el("dd", { "data-attribute": name, text: valueOf(contact, name) || "—" }));
    }
    const section = el("section", { class: "contact-card", "aria-labelledby": "contact-name" },
      el("h3", { id: "contact-name", text: caseName(contact) }), list);
    if (own && can("change_contact")) {
      section.append(el("button", { type: "button", id: "contact-edit", text: "Edit", onclick: () => edit(contact) }));
    }
    return section;
  }

  function edit(contact) {
    const form = el("form", { class: "contact-form", id: "contact-form", "aria-label": "Edit the contact" });
    const inputs = [];
    for (const name of names("contact.displayed-attributes")) {
      const inputId = `contact-field-${name}`;
      const field = FIELDS[name];
      const input = el("input", { id: inputId, name, value: valueOf(contact, name),
                                  type: field === "email" ? "email" : "text", readonly: READ_ONLY.has(field) || null });
      inputs.push(input);
      form.append(el("label", { for: inputId, text: label(name) }), input);
    }
    const error = el("p", { class: "contact-error", role: "alert" });
    form.append(error, el("div", { class: "contact-form-buttons" },
      el("button", { type: "submit", class: "primary", text: "Save" }),
      el("button", { type: "button", text: "Cancel", onclick: () => show(contact) })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { attributes: { ...(contact.attributes || {}) } };
      for (const input of inputs) {
        const field = FIELDS[input.name];
        if (READ_ONLY.has(field)) continue;
        if (field) body[field] = input.value.trim();
        else if (input.value.trim()) body.attributes[input.name] = input.value.trim();
        else delete body.attributes[input.name];
      }
      try {
        const saved = await DMS.api(`/api/contacts/${contact.id}/`, { method: "PATCH", body });
        DMS.contacts = DMS.contacts || new Map();
        DMS.contacts.set(saved.id, Promise.resolve(saved));
        for (const module of [DMS.Reply, DMS.Transcript]) if (module && module.setContact) module.setContact(saved);
        show(saved);
        DMS.flash("The contact is saved.");
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    state.body.replaceChildren(form);
    if (inputs.length) inputs.find((input) => !input.readOnly)?.focus();
  }

  /* ---- history ----------------------------------------------------------------------------------- */
  async function history(contact) {
    const section = el("section", { class: "contact-history", "aria-labelledby": "contact-history-title" },
      el("h3", { id: "contact-history-title", text: "History" }));
    const list = el("ol", { class: "history-list" });
    section.append(list);
    let interactions;
    try {
      interactions = listOf(await DMS.api(`/api/interactions/?contact=${encodeURIComponent(contact.id)}`));
    } catch (error) {
      list.append(el("li", { class: "muted", text: error.message }));
      return section;
    }
    for (const item of interactions) {
      const current = state.interaction && item.id === state.interaction.id;
      const entry = el("details", { class: "history-item", "data-interaction": item.id });
      entry.append(el("summary", {},
        el("span", { text: new Date(item.created_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) }),
        el("span", { class: "muted", text: ` · ${item.channel} · ${current ? "this conversation" : item.state}${item.disposition ? ` · ${item.disposition}` : ""}` })));
      entry.addEventListener("toggle", async () => {
        if (!entry.open || entry.dataset.loaded) return;
        entry.dataset.loaded = "yes";
        try {
          const full = await DMS.api(`/api/interactions/${item.id}/`);
          entry.append(el("ol", { class: "history-messages" }, ...full.messages.map((message) =>
            el("li", { class: message.direction === "inbound" ? "from-customer" : "from-agent" },
              el("span", { class: "muted", text: `${message.direction === "inbound" ? "Customer" : "Agent"}: ` }),
              el("span", { text: message.text || (message.location ? "(location)" : "(file)") })))));
        } catch (error) {
          entry.append(el("p", { class: "muted", text: error.message }));
        }
      });
      list.append(el("li", {}, entry));
    }
    if (!interactions.length) list.append(el("li", { class: "muted", text: "No interaction." }));
    return section;
  }

  /* ---- directory ------------------------------------------------------------------------------------ */
  function directory() {
    const input = el("input", { type: "search", id: "directory-search", placeholder: names("contact.directory-search-attributes").map(label).join(", ") });
    const results = el("div", { id: "directory-results", "aria-live": "polite" });
    const form = el("form", { role: "search", class: "directory-form", "aria-label": "Contact directory" },
      el("label", { for: "directory-search", text: "Find a contact" }),
      el("div", { class: "directory-row" }, input, el("button", { type: "submit", text: "Search" })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const words = input.value.trim();
      if (!words) { results.replaceChildren(); return; }
      let found;
      try {
        found = listOf(await DMS.api(`/api/contacts/?directory=${encodeURIComponent(words)}`));
      } catch (error) {
        results.replaceChildren(el("p", { class: "muted", text: error.message }));
        return;
      }
      const columns = names("contact.directory-displayed-columns");
      const table = el("table", { class: "directory-table" },
        el("caption", { class: "visually-hidden", text: `Contacts matching ${words}` }),
        el("thead", {}, el("tr", {}, ...columns.map((name) => el("th", { scope: "col", text: label(name) })))),
        el("tbody", {}, ...found.map((contact) => el("tr", { "data-contact": contact.id },
          ...columns.map((name, index) => el("td", {}, index === 0
            ? el("a", { href: `#contact-${contact.id}`, text: valueOf(contact, name) || `(contact ${contact.id})`,
                        onclick: (clicked) => { clicked.preventDefault(); show(contact, { own: false }); } })
            : valueOf(contact, name)))))));
      results.replaceChildren(found.length ? table : el("p", { class: "muted", text: "No contact matches." }));
    });
    return el("section", { class: "contact-directory" }, form, results);
  }

  /* ---- the panel ------------------------------------------------------------------------------------ */
  async function show(contact, { own = true } = {}) {
    const parts = [details(contact, { own })];
    if (!own) {
      parts.unshift(el("button", { type: "button", class: "linklike", id: "contact-back", text: "← This conversation's contact",
                                   onclick: () => show(state.contact) }));
    } else {
      state.contact = contact;
    }
    state.body.replaceChildren(...parts);
    const shown = state.body;
    const section = await history(contact);
    if (state.body === shown && shown.contains(parts[0])) shown.append(section);
  }

  async function open(container, interaction) {
    state.container = container;
    state.interaction = interaction;
    state.body = el("div", { class: "contact-body" });
    container.classList.add("contact-panel");
    container.replaceChildren(el("h2", { class: "panel-title", text: "Contact" }), state.body, directory());
    DMS.contacts = DMS.contacts || new Map();
    if (interaction.contact === null || interaction.contact === undefined) {
      state.body.append(el("p", { class: "muted", text: "No contact." }));
      return;
    }
    if (!DMS.contacts.has(interaction.contact)) {
      DMS.contacts.set(interaction.contact, DMS.api(`/api/contacts/${interaction.contact}/`).catch(() => null));
    }
    const contact = await DMS.contacts.get(interaction.contact);
    if (state.interaction !== interaction) return;
    if (contact) show(contact);
    else state.body.append(el("p", { class: "muted", text: "The contact cannot be read." }));
  }

  function close() {
    if (state.container) {
      state.container.replaceChildren();
      state.container.classList.remove("contact-panel");
    }
    state.interaction = null;
    state.contact = null;
  }

  window.DMS = window.DMS || {};
  DMS.Contact = { open, close };
})();
