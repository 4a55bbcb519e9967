// The window as a timeline: one lane per folder, marks as points, periods as bars, running
// periods as bars up to now (grown by tick()). Plain SVG, drawn to the container's width.

const SVG = "http://www.w3.org/2000/svg";
const LANE = 30;
const AXIS = 22;

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function ticks(from, to, count) {
  const steps = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400];
  const step = steps.find((s) => (to - from) / s <= count) ?? steps[steps.length - 1];
  const offset = new Date().getTimezoneOffset() * 60; // align to local midnights/hours
  const out = [];
  for (let t = Math.ceil((from - offset) / step) * step + offset; t <= to; t += step) out.push(t);
  return { out, step };
}

function label(t, step) {
  const d = new Date(t * 1000);
  if (step >= 86400) return d.toLocaleDateString([], { month: "short", day: "numeric" });
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/**
 * Draw the timeline into ``box``.
 * @param {HTMLElement} box
 * @param {{from: number, to: number, events: any[], lanes: {id: string|null, name: string}[],
 *          describe: (ev: any) => string}} model
 */
export function drawTimeline(box, model) {
  const width = Math.max(240, Math.floor(box.clientWidth || 600));
  const { from, to, events, lanes } = model;
  const height = lanes.length * LANE + AXIS;
  // Wide screens: lane names in a left gutter; narrow ones: above each lane.
  const gutter = width >= 560 ? 96 : 0;
  const x = (t) => gutter + ((Math.min(Math.max(t, from), to) - from) / (to - from)) * (width - gutter);
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-labelledby": "timeline-title timeline-summary",
  });
  const marks = events.filter((e) => e.duration === undefined).length;
  const running = events.filter((e) => e.duration === null).length;
  const periods = events.length - marks;
  root.append(
    svg("desc", { id: "timeline-summary" }, `${marks} marks and ${periods} periods (${running} running) in ${lanes.length} lanes; the list below has every event.`),
  );
  const { out, step } = ticks(from, to, Math.max(2, Math.floor(width / 90)));
  for (const t of out) {
    root.append(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: 0, y2: height - AXIS }));
    if (x(t) + 44 < width) root.append(svg("text", { class: "axis", x: x(t) + 2, y: height - 6 }, label(t, step)));
  }
  const now = Date.now() / 1000;
  if (now >= from && now <= to) root.append(svg("line", { class: "now", x1: x(now), x2: x(now), y1: 0, y2: height - AXIS }));
  lanes.forEach((lane, i) => {
    const top = i * LANE;
    const name = gutter && lane.name.length > 14 ? `${lane.name.slice(0, 13)}…` : lane.name;
    const text = svg("text", { class: "lane-label", x: 2, y: gutter ? top + 24 : top + 11 }, name);
    if (name !== lane.name) text.append(svg("title", {}, lane.name));
    root.append(text);
    for (const ev of events.filter((e) => (e.folderId ?? null) === lane.id)) {
      let node;
      const y = gutter ? top + 14 : top + 15;
      if (ev.duration === undefined) {
        node = svg("circle", { class: "mark", cx: x(ev.time), cy: y + 6, r: 4.5 });
      } else {
        const end = ev.duration === null ? now : ev.time + ev.duration;
        const x0 = x(ev.time);
        node = svg("rect", {
          class: ev.duration === null ? "running" : "period",
          x: x0,
          y,
          height: 12,
          rx: 2,
          width: Math.max(2, x(end) - x0),
        });
        if (ev.duration === null) node.dataset.runningSince = String(ev.time);
      }
      node.dataset.id = ev.id;
      node.append(svg("title", {}, model.describe(ev)));
      root.append(node);
    }
  });
  root.dataset.from = String(from);
  root.dataset.to = String(to);
  root.dataset.gutter = String(gutter);
  box.replaceChildren(root);
}

/** Grow the running bars to now (called every second). */
export function tickTimeline(box) {
  const root = box.querySelector("svg");
  if (!root) return;
  const from = Number(root.dataset.from);
  const to = Number(root.dataset.to);
  const gutter = Number(root.dataset.gutter);
  const width = Number(root.getAttribute("width")) - gutter;
  const now = Math.min(Date.now() / 1000, to);
  const xn = gutter + ((now - from) / (to - from)) * width;
  for (const bar of root.querySelectorAll("rect[data-running-since]")) {
    const x0 = Number(bar.getAttribute("x"));
    bar.setAttribute("width", String(Math.max(2, xn - x0)));
  }
  const line = root.querySelector("line.now");
  if (line) {
    line.setAttribute("x1", String(xn));
    line.setAttribute("x2", String(xn));
  }
}
