/* The project's small admin helpers: copy buttons and live character counters. No dependencies. */
(function () {
  "use strict";
  function copied(button) {
    const label = button.textContent;
    button.textContent = "Copied ✓";
    button.classList.add("dms-copied");
    setTimeout(function () { button.textContent = label; button.classList.remove("dms-copied"); }, 2000);
  }
  function fallbackCopy(text) {
    const area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
  }
  document.addEventListener("click", function (event) {
    const button = event.target.closest(".dms-copy");
    if (!button) return;
    event.preventDefault();
    const text = button.dataset.copy;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { copied(button); },
        function () { fallbackCopy(text); copied(button); });
    } else { fallbackCopy(text); copied(button); }
  });

  /* <input data-max="60"> gets "12 / 60" after it, red past the limit. */
  function counter(input) {
    if (input.dataset.counted) return;
    input.dataset.counted = "1";
    const out = document.createElement("span");
    out.className = "dms-counter";
    input.insertAdjacentElement("afterend", out);
    function update() {
      const max = parseInt(input.dataset.max, 10);
      const length = Array.from(input.value).length;  // code points, as the server counts
      out.textContent = length + " / " + max;
      out.classList.toggle("over", length > max);
    }
    input.addEventListener("input", update);
    update();
  }
  window.dmsCounters = function (root) {
    (root || document).querySelectorAll("[data-max]").forEach(counter);
  };
  document.addEventListener("DOMContentLoaded", function () { window.dmsCounters(); });
})();
