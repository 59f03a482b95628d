/** Charts rendered to SVG in Node (no canvas needed: vega's 'none' renderer + toSVG). */
import * as vega from 'vega';
import { compile } from 'vega-lite';
import type { VegaLiteSpec } from './specs.ts';

export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  // vega-lite's TopLevelSpec type is far stricter than our plain-object builders.
  const vg = compile(spec as unknown as Parameters<typeof compile>[0]).spec;
  // A loader that refuses everything: specs carry their data inline, nothing is fetched.
  const loader = vega.loader();
  loader.load = async (uri: string) => {
    throw new Error(`report charts never load external data (asked for ${uri})`);
  };
  const view = new vega.View(vega.parse(vg), { renderer: 'none', loader });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
