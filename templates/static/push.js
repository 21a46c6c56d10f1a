// fmn desktop notifications for the web UI: registers the service worker
// (/sw.js), subscribes this browser with fmn's VAPID key and posts the
// subscription to /api/v1/destinations as a "push" destination.
//
// Use: <script src="/static/push.js" defer></script>, then either a button
// with the attribute data-fmn-push-enable (and optionally an element with
// data-fmn-push-status for messages), or call window.fmnPush.enable() from
// your own script. From a signed-in session the destination is confirmed at
// once; with {token} (API use) the first push carries a confirmation link.
'use strict';
(function () {
  function keyBytes(b64url) {
    const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - b64url.length % 4) % 4);
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  }

  function supported() {
    return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
  }

  async function enable(opts) {
    opts = opts || {};
    if (!supported()) throw new Error('This browser cannot show desktop notifications.');
    const permission = await Notification.requestPermission();
    if (permission !== 'granted') throw new Error('Notifications are blocked for this site in the browser settings.');
    const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    await navigator.serviceWorker.ready;
    const keyRes = await fetch('/api/v1/push/key', { credentials: 'same-origin' });
    if (!keyRes.ok) throw new Error('Desktop notifications are not set up on this fmn.');
    const { public_key: key } = await keyRes.json();
    let sub = await reg.pushManager.getSubscription();
    if (!sub) {
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
    }
    const headers = { 'Content-Type': 'application/json' };
    if (opts.token) headers.Authorization = 'Bearer ' + opts.token;
    const res = await fetch('/api/v1/destinations', {
      method: 'POST', credentials: 'same-origin', headers,
      body: JSON.stringify({ kind: 'push', address: JSON.stringify(sub.toJSON()) }),
    });
    if (res.status === 201) return res.json();
    const err = await res.json().catch(() => ({}));
    // Subscribing twice from one browser is fine: it is the same destination.
    if (res.status === 400 && err.field === 'address' && /already/.test(err.error || '')) return null;
    throw new Error(err.error || ('fmn answered ' + res.status));
  }

  async function disable() {
    if (!supported()) return;
    const reg = await navigator.serviceWorker.getRegistration('/');
    const sub = reg && await reg.pushManager.getSubscription();
    if (sub) await sub.unsubscribe();
  }

  window.fmnPush = { supported, enable, disable };

  document.addEventListener('DOMContentLoaded', () => {
    const status = document.querySelector('[data-fmn-push-status]');
    const say = (text) => { if (status) status.textContent = text; };
    document.querySelectorAll('[data-fmn-push-enable]').forEach((button) => {
      if (!supported()) { button.disabled = true; say('This browser cannot show desktop notifications.'); return; }
      button.addEventListener('click', async () => {
        button.disabled = true;
        try {
          await enable();
          say('Desktop notifications are on for this browser.');
        } catch (e) {
          say(e.message);
        } finally {
          button.disabled = false;
        }
      });
    });
  });
}());
