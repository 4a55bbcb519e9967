// Numeric values of the window, one uPlot chart per (folder, value type), the unit on the axis.
import uPlot from "./vendor/uPlot-1.6.32.esm.js";

/** "mass:kg" / "mass/kg" → {quantity: "mass", unit: "kg"}. */
export function splitType(type) {
  const [quantity, unit = ""] = String(type ?? "").split(/[:/]/, 2);
  return { quantity: quantity || "value", unit: unit === "generic" ? "" : unit };
}

const charts = new Map(); // key → {plot, box}
let observer = null;

function fit(entry) {
  const width = Math.max(200, Math.floor(entry.box.clientWidth));
  if (entry.plot.width !== width) entry.plot.setSize({ width, height: 180 });
}

/**
 * @param {HTMLElement} box the container
 * @param {{events: any[], folderName: (id: string|null) => string, emptyText: string}} model
 */
export function drawCharts(box, model) {
  for (const { plot } of charts.values()) plot.destroy();
  charts.clear();
  observer?.disconnect();
  const groups = new Map();
  for (const ev of model.events) {
    const v = ev.value;
    if (!v || typeof v.value !== "number" || !Number.isFinite(v.value)) continue;
    const key = `${ev.folderId ?? ""}\u0000${v.type}`;
    if (!groups.has(key)) groups.set(key, { folderId: ev.folderId ?? null, type: v.type, points: [] });
    groups.get(key).points.push([ev.time, v.value]);
  }
  if (groups.size === 0) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = model.emptyText;
    box.replaceChildren(p);
    return;
  }
  box.replaceChildren();
  observer = new ResizeObserver(() => charts.forEach(fit));
  for (const [key, group] of groups) {
    const { quantity, unit } = splitType(group.type);
    const figure = document.createElement("figure");
    figure.className = "chart";
    const title = document.createElement("h3");
    title.textContent = `${model.folderName(group.folderId)} — ${quantity}${unit ? ` (${unit})` : ""}`;
    const plotBox = document.createElement("div");
    plotBox.className = "plot";
    figure.dataset.type = group.type;
    figure.append(title, plotBox);
    box.append(figure);
    const points = group.points.sort((a, b) => a[0] - b[0]);
    const last = points[points.length - 1][1];
    plotBox.setAttribute("role", "img");
    plotBox.setAttribute("aria-label", `${title.textContent}: ${points.length} values, latest ${last}${unit ? ` ${unit}` : ""}`);
    const plot = new uPlot(
      {
        width: Math.max(200, Math.floor(plotBox.clientWidth || 320)),
        height: 180,
        legend: { show: false },
        series: [{}, { label: quantity, stroke: "#1f5bc4", width: 2, points: { show: points.length < 60 } }],
        axes: [{ stroke: "#535c6e" }, { label: unit || quantity, stroke: "#535c6e", size: 55 }],
      },
      [points.map((p) => p[0]), points.map((p) => p[1])],
      plotBox,
    );
    const entry = { plot, box: plotBox };
    charts.set(key, entry);
    observer.observe(plotBox);
  }
}

let seriesPlot = null;

/** The chart of one series event (docs/series.md): x = the event's time + deltaTime. A
 * decimated answer (it has ``resolution``) is drawn as the mean with a min-max band.
 * @param {HTMLElement} figure the figure holding a ``.plot`` box
 * @param {{time: number, answer: {fields: string[], points: any[][], resolution?: number}, field: string, title: string}} model
 * @returns {{decimated: boolean, x: number[], y: (number|null)[], min?: (number|null)[], max?: (number|null)[]}}
 */
export function drawSeries(figure, model) {
  seriesPlot?.destroy();
  seriesPlot = null;
  const plotBox = figure.querySelector(".plot");
  plotBox.replaceChildren();
  const { fields, points } = model.answer;
  const decimated = model.answer.resolution !== undefined;
  const col = (name) => fields.indexOf(name);
  const pick = (i) => (i < 0 ? points.map(() => null) : points.map((p) => p[i]));
  const x = points.map((p) => model.time + p[0]);
  const data = decimated
    ? { decimated, x, y: pick(col(`${model.field}:mean`)), min: pick(col(`${model.field}:min`)), max: pick(col(`${model.field}:max`)) }
    : { decimated, x, y: pick(col(model.field)) };
  figure.chartData = data; // what is drawn (read by the browser tests)
  figure.dataset.points = String(points.length);
  figure.dataset.decimated = String(decimated);
  const { quantity, unit } = splitType(model.field === "value" ? model.title.replace(/^series:/, "") : model.field);
  const shown = data.y.filter((v) => v !== null);
  plotBox.setAttribute("role", "img");
  plotBox.setAttribute(
    "aria-label",
    points.length
      ? `${model.title}, ${model.field}: ${decimated ? `${points.length} buckets (mean, min and max)` : `${points.length} points`}` +
          (shown.length ? `, from ${Math.min(...shown)} to ${Math.max(...shown)}` : "")
      : `${model.title}: no points yet`,
  );
  if (!points.length) {
    plotBox.append(Object.assign(document.createElement("p"), { className: "empty", textContent: "No points in this series yet." }));
    return data;
  }
  const series = [{}, { label: `${model.field}${decimated ? " (mean)" : ""}`, stroke: "#1f5bc4", width: 2, points: { show: points.length < 60 } }];
  const columns = [x, data.y];
  const opts = {
    width: Math.max(200, Math.floor(plotBox.clientWidth || 320)),
    height: 200,
    legend: { show: false },
    series,
    axes: [{ stroke: "#535c6e" }, { label: unit || quantity, stroke: "#535c6e", size: 55 }],
  };
  if (decimated) {
    series.push({ label: `${model.field} (min)`, stroke: "#9bb5e6", width: 1, points: { show: false } });
    series.push({ label: `${model.field} (max)`, stroke: "#9bb5e6", width: 1, points: { show: false } });
    columns.push(data.min, data.max);
    opts.bands = [{ series: [3, 2], fill: "rgba(31, 91, 196, 0.15)" }];
  }
  seriesPlot = new uPlot(opts, columns, plotBox);
  return data;
}

/** The width of the series chart in px: maxPoints of the request. */
export function seriesWidth(figure) {
  return Math.max(200, Math.floor(figure.querySelector(".plot").clientWidth || 320));
}

export function clearSeries(figure) {
  seriesPlot?.destroy();
  seriesPlot = null;
  figure.querySelector(".plot").replaceChildren();
  figure.chartData = null;
}
