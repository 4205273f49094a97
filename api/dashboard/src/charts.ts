// Chart colours follow the page's light or dark scheme (prefers-color-scheme), read from the CSS
// variables so there is one palette.

import { ColorType, DeepPartial, IChartApi, TimeChartOptions, createChart } from "lightweight-charts";

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export function palette() {
  return {
    text: cssVar("--text"),
    muted: cssVar("--muted"),
    grid: cssVar("--grid"),
    background: cssVar("--surface"),
    up: cssVar("--up"),
    down: cssVar("--down"),
    accent: cssVar("--accent"),
    lines: [cssVar("--line1"), cssVar("--line2"), cssVar("--line3"), cssVar("--line4")],
  };
}

function themeOptions(): DeepPartial<TimeChartOptions> {
  const p = palette();
  return {
    layout: {
      background: { type: ColorType.Solid, color: p.background },
      textColor: p.text,
      attributionLogo: false,
    },
    grid: { vertLines: { color: p.grid }, horzLines: { color: p.grid } },
    rightPriceScale: { borderColor: p.grid },
    timeScale: { borderColor: p.grid, timeVisible: true, secondsVisible: false },
  };
}

/// A chart filling `container`, re-coloured when the system switches between light and dark.
export function themedChart(container: HTMLElement, options: DeepPartial<TimeChartOptions> = {}): {
  chart: IChartApi;
  dispose: () => void;
} {
  const chart = createChart(container, { autoSize: true, ...themeOptions(), ...options });
  const media = window.matchMedia("(prefers-color-scheme: dark)");
  const recolour = () => chart.applyOptions(themeOptions());
  media.addEventListener("change", recolour);
  return {
    chart,
    dispose: () => {
      media.removeEventListener("change", recolour);
      chart.remove();
    },
  };
}
