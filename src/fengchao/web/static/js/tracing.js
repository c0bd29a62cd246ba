// The case's contact graph (ECharts): the case in the middle, close contacts around it,
// contacts of contacts linked to the close contact they came through.
(function () {
  "use strict";
  function draw() {
    var box = document.getElementById("trace-graph");
    if (!box || !window.echarts) return;
    var graph = JSON.parse(box.getAttribute("data-graph") || "{}");
    var chart = window.echarts.init(box);
    chart.setOption({
      color: ["#c62828", "#ef6c00", "#90a4ae"],
      tooltip: { formatter: function (p) { return p.data.label || p.data.name || ""; } },
      legend: [{ data: (graph.categories || []).map(function (c) { return c.name; }), bottom: 0 }],
      series: [{
        type: "graph",
        layout: "force",
        roam: true,
        draggable: true,
        data: graph.nodes,
        links: graph.links,
        categories: graph.categories,
        label: { show: true, position: "right", fontSize: 12 },
        force: { repulsion: 160, edgeLength: [50, 120] },
        lineStyle: { color: "source", opacity: 0.6 }
      }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
