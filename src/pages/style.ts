/** The one stylesheet of the demo and ops pages: system fonts, no images, light and dark. */

/** `GET /assets/relais.css`. */
export const PAGE_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f5f6f8; --card: #fff; --text: #1b1f24; --muted: #5b6470; --line: #d8dde3;
  --accent: #1f5fbf; --accent-text: #fff; --ok: #1a7f37; --warn: #9a6700; --bad: #c62828;
  --unread: #e8f0fd; --mine: #e4f3e8; --radius: 8px; --focus: #f59e0b;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111418; --card: #1b2026; --text: #e6e9ed; --muted: #9aa4b0; --line: #333b45;
    --accent: #6ea8fe; --accent-text: #0b1220; --ok: #4ac26b; --warn: #d4a72c; --bad: #ff7b72;
    --unread: #1d2a3d; --mine: #1c3326;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
a { color: var(--accent); }
.skip { position: absolute; left: -999px; top: 0; background: var(--card); padding: .5rem 1rem; }
.skip:focus { left: .5rem; z-index: 10; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.bar { display: flex; align-items: center; justify-content: space-between; gap: 1rem;
  padding: .75rem 1.25rem; background: var(--card); border-bottom: 1px solid var(--line); }
.bar h1 { font-size: 1.25rem; margin: 0; }
.bar h1 small { color: var(--muted); font-weight: 400; font-size: 1rem; }
.logo { color: var(--accent); }
.lang { display: flex; gap: .25rem; }
.lang button[aria-pressed="true"] { background: var(--accent); color: var(--accent-text); border-color: var(--accent); }
main.grid { display: grid; gap: 1rem; padding: 1rem 1.25rem 2rem; max-width: 1200px; margin: 0 auto;
  grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius);
  padding: 1rem 1.1rem; min-width: 0; }
.card.wide { grid-column: 1 / -1; }
main.demo { grid-template-columns: minmax(300px, 1fr) minmax(340px, 1.5fr);
  grid-template-areas: "connect inbox" "live inbox" "chat chat"; align-items: start; }
main.demo #connect { grid-area: connect; } main.demo #inbox { grid-area: inbox; }
main.demo #live { grid-area: live; } main.demo #chat { grid-area: chat; }
@media (max-width: 760px) {
  main.demo { grid-template-columns: 1fr; grid-template-areas: "connect" "inbox" "chat" "live"; }
}
.card h2 { font-size: 1.1rem; margin: 0 0 .75rem; display: flex; align-items: center; gap: .5rem; }
.card h3 { font-size: 1rem; margin: 0 0 .5rem; }
.card-head { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: .5rem; margin-bottom: .5rem; }
.card-head h2 { margin: 0; }
.row { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem; }
label { font-weight: 600; }
label.plain, .row label:has(input[type="checkbox"]) { font-weight: 400; }
fieldset { border: 1px solid var(--line); border-radius: var(--radius); margin: .75rem 0; padding: .5rem .75rem; }
fieldset label { font-weight: 400; margin-right: 1rem; white-space: nowrap; }
legend { font-weight: 600; padding: 0 .25rem; }
input, select, button, textarea { font: inherit; color: inherit; }
input[type="text"], input[type="password"], input:not([type]), select, input[type="datetime-local"] {
  background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: .4rem .55rem; min-width: 0; }
form > label { display: block; margin: .25rem 0; }
button { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .4rem .8rem; cursor: pointer; }
button:hover:not(:disabled) { border-color: var(--accent); }
button:disabled { opacity: .55; cursor: default; }
button.primary { background: var(--accent); color: var(--accent-text); border-color: var(--accent); }
button.link { border: none; background: none; color: var(--accent); padding: .1rem .3rem; text-decoration: underline; }
.status { display: flex; align-items: center; gap: .5rem; margin: .75rem 0 0; color: var(--muted); }
.dot { width: .7rem; height: .7rem; border-radius: 50%; background: var(--muted); flex: none; display: inline-block; }
.dot[data-state="open"], .dot[data-presence="online"] { background: var(--ok); }
.dot[data-state="connecting"], .dot[data-state="reconnecting"], .dot[data-presence="away"] { background: var(--warn); }
.dot[data-state="closed"], .dot[data-state="offline"] { background: var(--bad); }
.badge { display: inline-block; min-width: 1.6rem; padding: 0 .45rem; border-radius: 999px; text-align: center;
  background: var(--bad); color: #fff; font-size: .8rem; font-weight: 700; line-height: 1.5rem; }
.badge[data-count="0"], .badge.neutral { background: var(--line); color: var(--text); }
.list { list-style: none; margin: 0; padding: 0; }
.list > li { border-top: 1px solid var(--line); padding: .6rem .25rem; }
.list > li:first-child { border-top: none; }
.item[data-read="false"] { background: var(--unread); border-radius: 6px; }
.item[data-read="false"] .item-title::before { content: "● "; color: var(--accent); }
.item-title { font-weight: 600; }
.item-body { margin: .15rem 0; }
.meta { color: var(--muted); font-size: .85rem; }
.item .row { margin-top: .35rem; }
.empty, .note { color: var(--muted); margin: .5rem 0; }
.chat { display: grid; grid-template-columns: minmax(200px, 280px) 1fr; gap: 1rem; }
@media (max-width: 700px) { .chat { grid-template-columns: 1fr; } }
.chat-side .row { margin-bottom: .5rem; }
.conversation-button { width: 100%; text-align: left; display: flex; align-items: center; gap: .5rem; }
.conversation-button[aria-current="true"] { border-color: var(--accent); background: var(--unread); }
.conversation-button .badge { margin-left: auto; }
.messages { list-style: none; margin: 0 0 .5rem; padding: .5rem; max-height: 360px; overflow-y: auto;
  border: 1px solid var(--line); border-radius: var(--radius); display: flex; flex-direction: column; gap: .4rem; }
.message { max-width: 80%; padding: .4rem .6rem; border-radius: 10px; background: var(--bg); align-self: flex-start; }
.message.mine { background: var(--mine); align-self: flex-end; }
.message .meta { display: block; }
.message.deleted .text { font-style: italic; color: var(--muted); }
.typing { min-height: 1.4rem; color: var(--muted); font-style: italic; margin: 0 0 .4rem; }
#compose input { flex: 1; }
.log { list-style: none; margin: 0; padding: 0; font-size: .9rem; max-height: 360px; overflow-y: auto; }
.log li { border-top: 1px solid var(--line); padding: .35rem 0; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: .6rem; overflow: auto; max-height: 420px; }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .5rem; border-top: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; border-top: none; }
td code { word-break: break-all; }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .6rem; margin: 0; }
.stats div { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: .5rem .7rem; }
.stats dt { color: var(--muted); font-size: .8rem; }
.stats dd { margin: 0; font-size: 1.35rem; font-weight: 700; }
.error { color: var(--bad); }
.charts { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
.chart { margin: 0; min-width: 0; }
.chart figcaption { font-weight: 600; margin-bottom: .25rem; }
.chart .uplot { width: 100%; font-family: inherit; color: var(--text); }
.status-bar { display: flex; height: 1.4rem; border-radius: 6px; overflow: hidden; background: var(--line); margin: .5rem 0; }
.status-bar .segment.acked { background: var(--ok); }
.status-bar .segment.delivered { background: var(--accent); }
.status-bar .segment.failed { background: var(--bad); }
.status-bar .segment.pending { background: var(--warn); }
#lookup-result h3 { margin-top: 1rem; }
#lookup-stats dd { font-size: 1.1rem; overflow-wrap: anywhere; }
[hidden] { display: none !important; }
`;
