/** Mounting or unmounting failed; the message is one line meant for the user. */
export class MountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MountError';
  }
}
