// Small DOM helpers; every string from the server goes in as text, never as HTML.

export const $ = (id) => document.getElementById(id);

export function show(id, visible = true) {
  $(id).hidden = !visible;
}

export function status(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.className = kind;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

export function downloadUrl(bytes, type = "application/octet-stream") {
  return URL.createObjectURL(new Blob([bytes], { type }));
}
