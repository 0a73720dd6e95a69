// Building DOM without markup: every string becomes a text node, so names
// and chat text from the network can never be parsed as HTML.

type Child = Node | string | null | undefined | false;

export interface Props {
  class?: string;
  id?: string;
  title?: string;
  type?: string;
  placeholder?: string;
  value?: string;
  disabled?: boolean;
  checked?: boolean;
  dataset?: Record<string, string>;
  onclick?: (event: MouseEvent) => void;
  onsubmit?: (event: SubmitEvent) => void;
  onchange?: (event: Event) => void;
  oninput?: (event: Event) => void;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (props.class) element.className = props.class;
  if (props.id) element.id = props.id;
  if (props.title) element.title = props.title;
  if (props.dataset) Object.assign(element.dataset, props.dataset);
  if (element instanceof HTMLInputElement || element instanceof HTMLButtonElement) {
    if (props.type) element.type = props.type as never;
    if (props.disabled !== undefined) element.disabled = props.disabled;
  }
  if (element instanceof HTMLInputElement) {
    if (props.placeholder) element.placeholder = props.placeholder;
    if (props.value !== undefined) element.value = props.value;
    if (props.checked !== undefined) element.checked = props.checked;
  }
  if (element instanceof HTMLSelectElement && props.disabled !== undefined) element.disabled = props.disabled;
  if (props.onclick) element.addEventListener("click", props.onclick as EventListener);
  if (props.onsubmit) element.addEventListener("submit", props.onsubmit as EventListener);
  if (props.onchange) element.addEventListener("change", props.onchange);
  if (props.oninput) element.addEventListener("input", props.oninput);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return element;
}

/** Replaces the children of `parent`. */
export function fill(parent: Element, ...children: Child[]): void {
  parent.replaceChildren(
    ...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false),
  );
}

export function option(value: string, label: string, selected: boolean): HTMLOptionElement {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = label;
  element.selected = selected;
  return element;
}
