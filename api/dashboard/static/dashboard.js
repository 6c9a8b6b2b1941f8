// The dashboard: fetch /dashboard/api/overview (the session cookie authenticates it) and
// draw it with Chart.js. Values arrive as exact decimal strings; they are turned into
// numbers only for drawing, and shown as sent in the table.
"use strict";

const COLORS = ["#635bff", "#00a2c7", "#f5a623", "#e5424d", "#3ecf8e", "#8f6ed5", "#ff7b39", "#697386"];
const charts = {};

function byId(id) { return document.getElementById(id); }

function draw(id, config) {
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
  charts[id] = new Chart(byId(id), config);
}

function days(from, to) {
  const out = [];
  for (let t = Date.parse(from); t < Date.parse(to); t += 86400000) out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

function render(data) {
  byId("t-events").textContent = data.totals.eventCount.toLocaleString();
  byId("t-customers").textContent = data.totals.customers.toLocaleString();
  byId("t-interactions").textContent = data.totals.interactionCount.toLocaleString();
  byId("t-dead").textContent = data.totals.deadLetters.toLocaleString();

  const select = byId("meter");
  select.replaceChildren(...data.usageOverTime.map((s) => new Option(s.displayName, s.eventName, false, s.eventName === data.selectedMeter)));

  const labels = days(data.from, data.to);
  draw("c-usage", {
    type: "line",
    data: {
      labels,
      datasets: data.usageOverTime.map((s, i) => {
        const byDay = Object.fromEntries(s.points.map((p) => [p.day.slice(0, 10), Number(p.value)]));
        return { label: `${s.displayName} (${s.aggregation})`, data: labels.map((d) => byDay[d] ?? 0), borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length], cubicInterpolationMode: "monotone" };
      }),
    },
    options: { scales: { y: { beginAtZero: true } } },
  });

  const top = data.topCustomers;
  const chosen = data.usageOverTime.find((s) => s.eventName === data.selectedMeter);
  byId("top-caption").textContent = chosen ? `Top customers: ${chosen.displayName} (${chosen.aggregation})` : "Top customers";
  draw("c-top", {
    type: "bar",
    data: { labels: top.map((r) => r.name || r.customerId), datasets: [{ label: data.selectedMeter || "", data: top.map((r) => Number(r.value)), backgroundColor: COLORS[0] }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } } },
  });
  const body = byId("top-table").querySelector("tbody");
  body.replaceChildren(...top.map((r) => {
    const row = document.createElement("tr");
    for (const [text, cls] of [[r.customerId, ""], [r.name || "", ""], [r.value ?? "", "num"], [String(r.eventCount), "num"]]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (cls) cell.className = cls;
      row.append(cell);
    }
    return row;
  }));

  draw("c-product", {
    type: "doughnut",
    data: { labels: data.usageByProduct.map((p) => p.name), datasets: [{ data: data.usageByProduct.map((p) => p.eventCount), backgroundColor: COLORS }] },
    options: { plugins: { legend: { position: "right" } } },
  });

  draw("c-interactions", {
    type: "bar",
    data: { labels: data.interactions.map((r) => r.type), datasets: [{ label: "interactions", data: data.interactions.map((r) => r.count), backgroundColor: COLORS[1] }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
}

async function load() {
  const main = byId("main");
  main.dataset.state = "loading";
  const params = new URLSearchParams({ days: byId("days").value });
  if (byId("meter").value) params.set("meter", byId("meter").value);
  try {
    const response = await fetch(`/dashboard/api/overview?${params}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) { window.location.assign("/dashboard"); return; }
    if (!response.ok) throw new Error(`the data request failed (${response.status})`);
    render(await response.json());
    byId("status").textContent = "";
    main.dataset.state = "ready";
  } catch (error) {
    byId("status").textContent = `Could not load the analytics: ${error.message}`;
    main.dataset.state = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  byId("days").addEventListener("change", load);
  byId("meter").addEventListener("change", load);
  load();
});
