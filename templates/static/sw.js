// fmn's service worker: shows the notifications fmn pushes (Web Push), even
// when no fmn tab is open, and opens the notification's link on a click.
// The payload is JSON: {title, body, link, app, icon, tag, why}; "why" is
// offered as the notification's action.
'use strict';

function safeLink(link) {
  try {
    const u = new URL(link, self.location.origin);
    if (u.protocol === 'https:' || u.protocol === 'http:') return u.href;
  } catch (e) { /* fall through */ }
  return self.location.origin + '/';
}

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let data = {};
  if (event.data) {
    try { data = event.data.json(); } catch (e) { data = { body: event.data.text() }; }
  }
  const title = data.title || 'fmn';
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || '',
    icon: data.icon || '/static/favicon.svg',
    tag: data.tag || undefined,
    data: { link: safeLink(data.link || '/'), why: data.why ? safeLink(data.why) : '' },
    actions: data.why ? [{ action: 'why', title: 'Why?' }] : [],
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const d = event.notification.data || {};
  const link = (event.action === 'why' && d.why) ? d.why : (d.link || '/');
  event.waitUntil(self.clients.openWindow(safeLink(link)));
});

// A push service may rotate a subscription; subscribe again with the same
// key and tell fmn (the signed-in session's cookie goes along).
self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil((async () => {
    const res = await fetch('/api/v1/push/key', { credentials: 'same-origin' });
    if (!res.ok) return;
    const { public_key: key } = await res.json();
    const sub = await self.registration.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: fmnKeyBytes(key),
    });
    await fetch('/api/v1/destinations', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ kind: 'push', address: JSON.stringify(sub.toJSON()) }),
    });
  })());
});

function fmnKeyBytes(b64url) {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - b64url.length % 4) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}
