/* Renders the page's vega-lite charts with the vega runtimes shipped beside the site. */
(function () {
  'use strict';
  var el = document.getElementById('charts-data');
  if (!el) return;
  var charts = JSON.parse(el.textContent);
  var done = 0;
  charts.forEach(function (c) {
    var target = document.getElementById('chart-' + c.id);
    if (!target) return;
    // vegaEmbed's tooltip handler escapes text; no actions menu (no links leave the site).
    vegaEmbed(target, c.spec, { actions: false, renderer: 'svg' })
      .then(function () {
        done++;
        document.body.dataset.chartsReady = String(done);
      })
      .catch(function (e) {
        console.error('chart ' + c.id + ': ' + e);
      });
  });
})();
