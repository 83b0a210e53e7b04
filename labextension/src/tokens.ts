/**
 * Shared types for the nb2pipe lab extension.
 *
 * Placeholder: the server-side API of nb2pipe is not defined yet. Shapes of
 * the `/nb2pipe/...` REST responses will live here once they exist.
 */

/** Settings of the `nb2pipe:plugin` plugin (see schema/plugin.json). */
export interface INb2pipeSettings {
  /** How often (ms) the sidebar refreshes pipeline status. */
  pollInterval: number;
}
