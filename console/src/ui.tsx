import { useRef, useState } from 'preact/hooks';
import { ApiError, messageOf } from './api';

/** Asks before an action that cannot be undone; resolves true when confirmed. */
export function useConfirm() {
  const ref = useRef<HTMLDialogElement>(null);
  const [text, setText] = useState('');
  const resolver = useRef<((ok: boolean) => void) | null>(null);
  const ask = (question: string) =>
    new Promise<boolean>((resolve) => {
      setText(question);
      resolver.current = resolve;
      ref.current?.showModal();
    });
  const answer = (ok: boolean) => {
    ref.current?.close();
    resolver.current?.(ok);
    resolver.current = null;
  };
  const dialog = (
    <dialog ref={ref} class="confirm" onCancel={() => answer(false)}>
      <p>{text}</p>
      <div class="actions">
        <button type="button" class="secondary" onClick={() => answer(false)}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={() => answer(true)}>
          Confirm
        </button>
      </div>
    </dialog>
  );
  return { ask, dialog };
}

/** What the API refused, with its code (`BAD_USER_INPUT`, `FORBIDDEN`…) beside its message. */
export function ErrorNote({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  const code = error instanceof ApiError ? error.code : undefined;
  return (
    <p class="error" role="alert">
      {code && <code class="code">{code}</code>} <span class="message">{messageOf(error)}</span>
    </p>
  );
}

/**
 * A secret the API returns once (a new key, a webhook signing secret): shown until the operator
 * dismisses it, with a copy button. Nothing keeps it once dismissed.
 */
export function SecretOnce({
  label,
  secret,
  onDismiss,
}: {
  label: string;
  secret: string;
  onDismiss: () => void;
}) {
  const [copied, setCopied] = useState<'yes' | 'failed' | null>(null);
  const field = useRef<HTMLInputElement>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied('yes');
    } catch {
      // No clipboard (an insecure origin, a denied permission): select it for a manual copy.
      field.current?.select();
      setCopied('failed');
    }
  };
  return (
    <div class="secret-once" role="region" aria-label={label}>
      <strong>{label}</strong>
      <p class="hint">
        Shown this once: the server keeps no copy it can show again. Store it now (a password
        manager, your secret store).
      </p>
      <div class="secret-row">
        <input
          ref={field}
          class="mono secret"
          name="secret"
          readOnly
          value={secret}
          spellcheck={false}
          autocomplete="off"
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" class="secondary" onClick={onDismiss}>
          I have stored it
        </button>
      </div>
      {copied === 'yes' && (
        <p class="notice" role="status">
          Copied to the clipboard.
        </p>
      )}
      {copied === 'failed' && (
        <p class="hint">The clipboard is not available here: it is selected, copy it by hand.</p>
      )}
    </div>
  );
}

/** Every kind of session event, in the order the API documents them. */
export const EVENT_TYPES = [
  'STARTED',
  'REFRESHED',
  'REVOKED',
  'EXPIRED',
  'REUSE_DETECTED',
  'EXTENDED',
  'DATA_UPDATED',
] as const;
