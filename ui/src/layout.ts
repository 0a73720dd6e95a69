// Where tiles go: a grid that stays close to square, or one big tile
// (the spotlight) with the others in a strip.

export type LayoutMode = "grid" | "spotlight";

export interface GridShape {
  columns: number;
  rows: number;
}

/** Columns and rows for `count` tiles of 16:9 in an area of `width` × `height`. */
export function gridShape(count: number, width: number, height: number): GridShape {
  if (count <= 0) return { columns: 1, rows: 1 };
  let best: GridShape = { columns: 1, rows: count };
  let bestArea = 0;
  for (let columns = 1; columns <= count; columns++) {
    const rows = Math.ceil(count / columns);
    const tileWidth = Math.min(width / columns, ((height / rows) * 16) / 9);
    const area = tileWidth * ((tileWidth * 9) / 16);
    if (area > bestArea) {
      bestArea = area;
      best = { columns, rows };
    }
  }
  return best;
}

/** The tile to put in the spotlight: the chosen one, else whoever speaks, else the first. */
export function spotlightOf(sessions: string[], pinned: string | null, speaking: string | null): string | null {
  if (pinned && sessions.includes(pinned)) return pinned;
  if (speaking && sessions.includes(speaking)) return speaking;
  return sessions[0] ?? null;
}
