/**
 * The charts' stylesheet: uPlot's own, bundled by `deno task bundle` into `CHARTS_CSS`
 * and served as `/assets/charts.css` (the page's policy loads styles from its origin only).
 */

import "uplot/dist/uPlot.min.css";
