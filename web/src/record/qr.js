// The invitation link as a QR code, drawn here in the browser (no network: the link carries the
// invitation secret, so it must never reach a third-party QR service). qrcode-generator makes
// the module matrix; we draw it as one SVG path with plain attributes, because the page's CSP
// (server/web/browser.py) allows no inline style.
import qrcode from "qrcode-generator";

const SVG = "http://www.w3.org/2000/svg";
export const QUIET = 4; // modules of white border the QR specification asks for

// The dark/light modules of `text`: the smallest version that holds it, error correction M
// (15%, enough for a screen photographed at an angle). Byte mode reads char codes as bytes,
// so only ASCII is accepted (links are: location.origin is punycode, the code is base32-like).
export function qrModules(text) {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new Error("a QR code is made only of an ASCII link");
  const qr = qrcode(0, "M");
  qr.addData(text, "Byte");
  qr.make();
  const n = qr.getModuleCount();
  return Array.from({ length: n }, (_, row) => Array.from({ length: n }, (_, col) => qr.isDark(row, col)));
}

// One path of horizontal runs of dark modules, offset by the quiet zone.
export function qrPath(modules) {
  const parts = [];
  modules.forEach((row, y) => {
    for (let x = 0; x < row.length; x++) {
      if (!row[x]) continue;
      let run = 1;
      while (row[x + run]) run++;
      parts.push(`M${x + QUIET} ${y + QUIET}h${run}v1h-${run}z`);
      x += run - 1;
    }
  });
  return parts.join("");
}

// An <svg role="img"> of `text` named `label` for screen readers and tests.
export function qrSvg(text, label, doc = document) {
  const modules = qrModules(text);
  const size = modules.length + 2 * QUIET;
  const svg = doc.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("shape-rendering", "crispEdges");
  const back = doc.createElementNS(SVG, "rect");
  back.setAttribute("width", String(size));
  back.setAttribute("height", String(size));
  back.setAttribute("fill", "#fff");
  const dark = doc.createElementNS(SVG, "path");
  dark.setAttribute("d", qrPath(modules));
  dark.setAttribute("fill", "#000");
  svg.append(back, dark);
  return svg;
}
