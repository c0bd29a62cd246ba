// The dashboard's charts (ECharts): each element with data-chart holds a whole option
// built on the server; a data item with a url opens the list behind it when clicked.
// Charts are drawn again after every htmx refresh of the sections.
(function () {
  "use strict";
  var charts = [];
  function draw() {
    if (!window.echarts) return;
    charts.forEach(function (c) { c.dispose(); });
    charts = [];
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var option;
      try { option = JSON.parse(box.getAttribute("data-chart") || "{}"); } catch (e) { return; }
      if (option.rows) box.style.height = (64 + 34 * option.rows) + "px";
      var chart = window.echarts.init(box);
      chart.setOption(option);
      chart.on("click", function (p) {
        if (p.data && p.data.url) window.location.href = p.data.url;
      });
      charts.push(chart);
    });
  }
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "dash") draw();
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
