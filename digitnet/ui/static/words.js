// The page's language: English or Simplified Chinese, the browser's choice unless the visitor switched.
//
// The dictionaries come from digitnet/ui/words.py (window.DigitNetDictionary, set by a head script just
// before this file). The rule is the server's (words.language): the switch's cookie, else the first of
// the browser's languages we have, else English. The switch keeps its choice in that cookie, so the
// server words its answers (a run's status, a refusal) in the same language from the next request on.
//
// Three kinds of text follow the language:
// - Gradio's own and the gr.I18n keys (tabs, buttons, labels): Gradio's page translates them; on a
//   switch this file calls Gradio's changeLocale (from the page's own core module, found by its URL).
// - Markup of digitnet's components with data-i18n="key" (data-i18n-aria for aria-label): set here,
//   again whenever such markup appears (a MutationObserver) or the language changes.
// - What answer.js and curves.js write themselves: DigitNetWords.t(key, values), redrawn on the
//   window event 'digitnet-language'.
(function (root) {
  'use strict';
  const data = root.DigitNetDictionary || { languages: ['en'], cookie: 'digitnet-lang', words: { en: {} } };

  function normalise(tag) {
    tag = String(tag || '').trim().toLowerCase();
    if (tag.startsWith('zh')) return 'zh-CN';
    if (tag.startsWith('en')) return 'en';
    return null;
  }

  function cookie() {
    const found = document.cookie.split('; ').find((c) => c.startsWith(data.cookie + '='));
    return found ? decodeURIComponent(found.slice(data.cookie.length + 1)) : null;
  }

  function pick() {
    const chosen = normalise(cookie());
    if (chosen) return chosen;
    const tags = (navigator.languages && navigator.languages.length) ? navigator.languages : [navigator.language];
    for (const tag of tags) {
      const lang = normalise(tag);
      if (lang) return lang;
    }
    return 'en';
  }

  let lang = pick();

  // The text of key in the current language, {name} filled from values (English where a key lacks one;
  // fallback, else the key, where the dictionaries have none).
  function t(key, values, fallback) {
    const words = data.words[lang] || {};
    const text = key in words ? words[key] : (data.words.en || {})[key];
    if (text === undefined) return fallback === undefined ? key : fallback;
    return text.replace(/\{(\w+)\}/g, (m, name) => (values && name in values ? String(values[name]) : m));
  }

  function apply(scope) {
    const rootEl = scope || document;
    if (!rootEl.querySelectorAll) return;
    const own = rootEl.matches ? [rootEl] : [];
    for (const el of [...own, ...rootEl.querySelectorAll('[data-i18n], [data-i18n-aria]')]) {
      if (el.dataset.i18n && el.textContent !== t(el.dataset.i18n)) el.textContent = t(el.dataset.i18n);
      if (el.dataset.i18nAria) el.setAttribute('aria-label', t(el.dataset.i18nAria));
    }
    // A radio's choice labels are no gr.I18n texts: a label whose English (Gradio puts it in data-testid)
    // has words (choice.<English>) gets them in its text node, which Gradio writes only when the choice changes.
    for (const el of rootEl.querySelectorAll('label[data-testid$="-radio-label"]')) {
      const key = 'choice.' + el.dataset.testid.slice(0, -'-radio-label'.length);
      const text = el.querySelector('span') && el.querySelector('span').firstChild;
      if (key in (data.words.en || {}) && text && text.nodeType === 3 && text.nodeValue !== t(key)) text.nodeValue = t(key);
    }
    // Gradio 6.31 translates a tab's button only when the tab renders: after a switch, the others kept
    // the old language until visited. The tabs' names are among the words (tab_<id>).
    for (const el of rootEl.querySelectorAll('button[role=tab][data-tab-id]')) {
      const key = 'tab_' + el.dataset.tabId;
      if (key in (data.words[lang] || {}) && el.textContent !== t(key)) el.textContent = t(key);
    }
  }

  // Gradio's own locale (its texts and the gr.I18n keys): its core module exports changeLocale. The module's
  // file name carries a hash, so it is found among what the page loaded.
  let core = null;
  function gradioCore() {
    if (core) return core;
    const urls = performance.getEntriesByType('resource').map((e) => e.name)
      .concat([...document.querySelectorAll('link[rel=modulepreload], script[type=module]')].map((e) => e.href || e.src));
    const url = urls.find((u) => /\/assets\/core-[\w-]+\.js(\?|$)/.test(u || ''));
    core = url ? import(url).catch(() => null) : Promise.resolve(null);
    return core;
  }

  async function gradioLocale(target) {
    if (document.documentElement.lang === target) return;
    const mod = await gradioCore();
    if (mod && typeof mod.changeLocale === 'function') mod.changeLocale(target);
  }

  function set(target) {
    lang = normalise(target) || 'en';
    document.cookie = data.cookie + '=' + encodeURIComponent(lang) + '; path=/; max-age=31536000; SameSite=Lax';
    apply(document);
    gradioLocale(lang);
    root.dispatchEvent(new CustomEvent('digitnet-language', { detail: lang }));
  }

  root.DigitNetWords = {
    t,
    apply,
    set,
    toggle() { set(lang === 'en' ? 'zh-CN' : 'en'); },
    get lang() { return lang; },
  };

  // Markup that Gradio (re)renders later gets its words as it appears.
  new MutationObserver((records) => {
    for (const r of records) for (const node of r.addedNodes) if (node.nodeType === 1) apply(node);
  }).observe(document.documentElement, { childList: true, subtree: true });
  // Gradio picked its locale from navigator.language alone: align it with the cookie or the languages list.
  gradioLocale(lang);
  apply(document);
})(window);
