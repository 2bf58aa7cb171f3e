(() => {
  "use strict";
  const table = document.getElementById("findings-table");
  const form = document.getElementById("controls");
  if (!table || !form) return;
  const byId = (id) => document.getElementById(id);
  const bodies = Array.from(table.tBodies);
  const text = new Map(bodies.map((b) => [b, b.textContent.toLocaleLowerCase()]));
  const filter = byId("filter");
  const selects = [["code", byId("filter-code")], ["severity", byId("filter-severity")],
                   ["portal", byId("filter-portal")]];
  const newOnly = byId("filter-new");
  const count = byId("count");
  const noMatch = byId("no-match");
  const total = bodies.length;

  function apply() {
    const terms = filter.value.toLocaleLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const body of bodies) {
      let visible = terms.every((t) => text.get(body).includes(t));
      for (const [key, select] of selects) {
        if (visible && select.value && body.dataset[key] !== select.value) visible = false;
      }
      if (visible && newOnly && newOnly.checked && body.dataset.new !== "1") visible = false;
      body.hidden = !visible;
      if (visible) shown += 1;
    }
    count.textContent = `${shown.toLocaleString("en")} of ${total.toLocaleString("en")} finding` +
      (total === 1 ? "" : "s");
    noMatch.hidden = shown !== 0;
  }

  const headers = Array.from(table.tHead.rows[0].cells);
  const collator = new Intl.Collator("en", {numeric: true, sensitivity: "base"});
  const sortKey = (body, col) => {
    const cell = body.rows[0].cells[col];
    return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  };
  function sortBy(col, direction) {
    const sign = direction === "ascending" ? 1 : -1;
    // Ties keep their current order, so sorting by one column then another sorts by both.
    const position = new Map(Array.from(table.tBodies).map((b, i) => [b, i]));
    const sorted = bodies.slice().sort((a, b) => {
      const ka = sortKey(a, col), kb = sortKey(b, col);
      if (ka === "" && kb !== "") return 1;   // blanks last, whichever the direction
      if (kb === "" && ka !== "") return -1;
      return sign * collator.compare(ka, kb) || position.get(a) - position.get(b);
    });
    table.append(...sorted);
    headers.forEach((th, i) => {
      if (i === col) th.setAttribute("aria-sort", direction); else th.removeAttribute("aria-sort");
    });
  }
  headers.forEach((th, col) => {
    const button = th.querySelector("button");
    if (!button) return;
    button.addEventListener("click", () => {
      const current = th.getAttribute("aria-sort");
      sortBy(col, current === "ascending" ? "descending" : "ascending");
    });
  });

  filter.addEventListener("input", apply);
  for (const [, select] of selects) select.addEventListener("change", apply);
  if (newOnly) newOnly.addEventListener("change", apply);
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("reset", () => setTimeout(apply, 0));

  // Printing shows every finding's evidence; closing again afterwards restores what the reader had open.
  let opened = [];
  window.addEventListener("beforeprint", () => {
    opened = Array.from(document.querySelectorAll("details:not([open])"));
    opened.forEach((d) => { d.open = true; });
  });
  window.addEventListener("afterprint", () => { opened.forEach((d) => { d.open = false; }); opened = []; });

  apply();
})();
