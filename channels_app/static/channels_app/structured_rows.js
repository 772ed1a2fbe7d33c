/* Row editors for the structured content of a standard response: reply buttons, list sections and their
   rows, Apple items and carousel cards. Each <textarea class="sr-json" data-rows="{...}"> holds the JSON the
   server validates (channels_app/rendering); this script hides it and edits it as rows of fields, writing
   the JSON back on every keystroke. The description of the rows comes from ROW_EDITORS in
   channels_app/admin/standard_responses.py. No dependencies. */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function (pair) {
      if (pair[0] === "text") node.textContent = pair[1];
      else node.setAttribute(pair[0], pair[1]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function parse(text) {
    try { const value = JSON.parse(text || "[]"); return Array.isArray(value) ? value : []; }
    catch (error) { return []; }
  }

  /* A list of rows (the top level, or a section's rows) edited in `box`. `totalFull()` says whether the limit
     on the nested rows of all sections together is reached (then no row, nor a section, can be added). */
  function rowList(spec, rows, onChange, noun, depth, totalFull) {
    const box = el("div", {"class": "sr-rows sr-depth-" + depth});
    const list = el("div", {"class": "sr-row-list"});
    const add = el("button", {"type": "button", "class": "button sr-add", text: "+ Add " + noun});
    box.appendChild(list);
    box.appendChild(add);

    function settle() {
      const full = spec.max && rows.length >= spec.max;
      const total = totalFull && totalFull();
      add.disabled = !!(full || total);
      add.title = full ? "At most " + spec.max + " " + noun + "s." : (total || "");
    }
    add.dmsSettle = settle;

    function render() {
      list.innerHTML = "";
      rows.forEach(function (row, index) { list.appendChild(rowBox(row, index)); });
      settle();
      window.dmsCounters && window.dmsCounters(list);
    }

    function rowBox(row, index) {
      const fields = el("div", {"class": "sr-row-fields"});
      spec.keys.forEach(function (key) {
        const name = key[0], label = key[1], kind = key[2], limit = key[3];
        if (kind.indexOf("rows:") === 0) {
          row[name] = Array.isArray(row[name]) ? row[name] : [];
          const nested = rowList(limit, row[name], onChange, kind.slice(5), depth + 1, totalFull);
          fields.appendChild(el("div", {"class": "sr-nested"}, [el("div", {"class": "sr-label", text: label}), nested]));
          return;
        }
        let input;
        if (kind.indexOf("select:") === 0) {
          input = el("select", {"data-key": name});
          kind.slice(7).split("|").forEach(function (choice) {
            input.appendChild(el("option", {value: choice, text: choice.replace("_", " ")}));
          });
          if (!row[name]) row[name] = input.options[0].value;
          input.value = row[name];
        } else if (kind === "check") {
          input = el("input", {type: "checkbox", "data-key": name});
          input.checked = !!row[name];
        } else {
          input = el("input", {type: "text", "data-key": name, value: row[name] == null ? "" : row[name]});
          if (limit) input.setAttribute("data-max", limit);
        }
        input.addEventListener(kind === "check" || kind.indexOf("select:") === 0 ? "change" : "input", function () {
          if (kind === "check") { if (input.checked) row[name] = true; else delete row[name]; }
          else if (input.value === "") delete row[name];
          else row[name] = input.value;
          onChange();
        });
        fields.appendChild(el("label", {"class": "sr-field"}, [el("span", {"class": "sr-label", text: label}), input]));
      });
      const remove = el("button", {"type": "button", "class": "sr-remove", title: "Remove this " + noun, text: "✕"});
      remove.addEventListener("click", function () { rows.splice(index, 1); render(); onChange(true); });
      const head = el("div", {"class": "sr-row-head"}, [
        el("strong", {text: noun.charAt(0).toUpperCase() + noun.slice(1) + " " + (index + 1)}), remove,
      ]);
      return el("div", {"class": "sr-row"}, [head, fields]);
    }

    add.addEventListener("click", function () { rows.push({}); render(); onChange(true); });
    render();
    return box;
  }

  function editor(textarea) {
    const spec = JSON.parse(textarea.dataset.rows);
    const rows = parse(textarea.value);
    const total = spec.total;  // e.g. {key: "rows", noun: "row", max: 10, note: "across all sections"}
    const counter = total ? el("div", {"class": "dms-counter sr-total"}) : null;
    function counted() {
      return rows.reduce(function (sum, row) {
        return sum + (Array.isArray(row[total.key]) ? row[total.key].length : 0);
      }, 0);
    }
    function totalFull() {
      return total && counted() >= total.max ? "At most " + total.max + " " + total.noun + "s " + total.note + "." : "";
    }
    let box = null;
    function count() {
      if (!total) return;
      const n = counted();
      counter.textContent = n + " / " + total.max + " " + total.noun + "s " + total.note;
      counter.classList.toggle("over", n > total.max);
      counter.classList.toggle("full", n === total.max);
      box.querySelectorAll(".sr-add").forEach(function (add) { if (add.dmsSettle) add.dmsSettle(); });
    }
    function write(structural) {
      textarea.value = rows.length ? JSON.stringify(rows) : "";
      count();
      // The preview listens to the form's input and change events.
      textarea.dispatchEvent(new Event(structural ? "change" : "input", {bubbles: true}));
    }
    box = rowList(spec, rows, write, spec.noun, 0, total ? totalFull : null);
    box.classList.add("sr-editor");
    if (counter) box.insertBefore(counter, box.firstChild);
    textarea.style.display = "none";
    textarea.insertAdjacentElement("afterend", box);
    count();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("textarea.sr-json[data-rows]").forEach(editor);
  });
})();
