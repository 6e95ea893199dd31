// The privacy indicator: a badge per kind of the server's devices in use (GET /indicator,
// public, names no session): red "camera in use", grey "camera muted", none when off.
(() => {
  const render = (ind) => {
    const el = document.getElementById('indicator');
    el.innerHTML = '';
    for (const kind of ['camera', 'microphone']) {
      const k = ind && ind[kind];
      if (!k || k.state === 'off') continue;
      const b = document.createElement('span');
      b.className = 'badge ' + k.state;
      b.id = 'badge-' + kind;
      b.textContent = kind + (k.state === 'muted' ? ' muted' : ' in use');
      if (k.sinceMs) b.title = 'since ' + new Date(k.sinceMs).toLocaleTimeString();
      el.appendChild(b);
    }
  };
  const poll = () => fetch('/indicator').then((r) => r.ok ? r.json() : null).then(render).catch(() => {});
  poll();
  setInterval(poll, 2000);
})();
