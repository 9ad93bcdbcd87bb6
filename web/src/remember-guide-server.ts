// The server last opened in a form, so the guide (opened from an error link) shows that server.
const KEY = 'mailroom.guideServer';

export function rememberGuideServer(id: string): void {
  try {
    window.sessionStorage.setItem(KEY, id);
  } catch {
    // Storage may be unavailable (private mode, policies): the guide then picks the first server.
  }
}

export function rememberedGuideServer(): string | null {
  try {
    return window.sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}
