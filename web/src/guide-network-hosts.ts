/** The host:port pairs the Mailroom server itself must reach for one Microsoft server (guide step 7). */
export interface NetworkHostsInput {
  direction: 'outgoing' | 'incoming';
  /** MICROSOFT_AUTHORITY_HOST and MICROSOFT_GRAPH_HOST as origins (https://host[:port]). */
  authorityHost: string;
  graphHost: string;
  smtpHost?: string | null;
  smtpPort?: number | null;
  sendUsing?: string | null;
  imapHost?: string | null;
  imapPort?: number | null;
  serverType?: string | null;
}

/** host:port of an origin, the scheme's default port written out (URL.host omits it, URL.port is '' then). */
export function hostPort(origin: string, fallback: string): string {
  try {
    const u = new URL(origin);
    const port = u.port || (u.protocol === 'http:' ? '80' : '443');
    return `${u.hostname}:${port}`;
  } catch {
    return fallback;
  }
}

export function guideNetworkHosts(s: NetworkHostsInput): string[] {
  const authority = hostPort(s.authorityHost, 'login.microsoftonline.com:443');
  const graph = hostPort(s.graphHost, 'graph.microsoft.com:443');
  if (s.direction === 'outgoing') {
    if (s.sendUsing === 'graph') return [authority, graph];
    return [authority, `${s.smtpHost || 'smtp.office365.com'}:${s.smtpPort ?? 587}`];
  }
  if (s.serverType === 'graph') return [authority, graph];
  return [authority, `${s.imapHost || 'outlook.office365.com'}:${s.imapPort ?? 993}`];
}
