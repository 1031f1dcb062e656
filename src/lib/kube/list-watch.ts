import {type KubernetesObject, Watch} from '@kubernetes/client-node'

/**
 * One kind of object (one selector) kept current through the watch API: a list, then a watch from the
 * list's resourceVersion with bookmarks, resumed from the last resourceVersion it saw each time the
 * stream ends. Only an expired resourceVersion (410 Gone, as the HTTP status of the request or as the
 * Status of an ERROR event) costs a new list.
 *
 * Not the client library's ListWatch: it asks for no bookmarks and no server-side timeout (so a quiet
 * watch is cut by the client's silence limit, and resumes from a version that may have expired meanwhile),
 * always lists before its first watch, and stops for good on any other error.
 */

export interface ListedObjects<T> {
  items: T[]
  /** The list's resourceVersion, where a watch starts from. */
  resourceVersion: string
}

export interface ListWatchOptions<T extends KubernetesObject> {
  /** The collection's path, e.g. /api/v1/pods. */
  path: string
  /** labelSelector / fieldSelector: the same the list uses. */
  query: Record<string, string>
  list: () => Promise<ListedObjects<T>>
  /** A list already made: watch from it instead of listing first. */
  from?: ListedObjects<T>
  /** The objects changed (not called for bookmarks). */
  changed: () => void
  /** A list or watch failed; it is tried again after retryMs. */
  failed: (error: unknown) => void
  /** A watch opened (after a failure: the server answers again). */
  opened?: () => void
  /** Asked of the server for each watch, which then ends it cleanly; a silent watch is never cut by the client. */
  serverTimeoutSeconds: number
  retryMs?: number
}

/** A watch ERROR event's object: a Status. */
interface Status {
  kind?: string
  code?: number
  reason?: string
  message?: string
}

/** The Status of a watch's ERROR event, as an error. */
export class WatchStatusError extends Error {
  constructor(readonly status: Status) {
    super(status.message ?? `watch failed: ${status.reason ?? 'no reason given'}`)
    this.name = 'WatchStatusError'
  }
}

/** How a watch ended: its resourceVersion expired, it failed, or the server ended it (error undefined). */
type Ending = {gone: true} | {gone: false; error?: unknown}

const isGone = (status: Status) => status.kind === 'Status' && status.code === 410
const httpStatusOf = (error: unknown) => (error as {statusCode?: unknown} | null)?.statusCode

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`

export class ListWatch<T extends KubernetesObject> {
  /** The objects now, by namespace/name. */
  readonly objects = new Map<string, T>()
  /** Where the next watch resumes: the last list's, event's or bookmark's resourceVersion. */
  resourceVersion = ''
  /** Lists made after the first (or after `from`): one per expired resourceVersion. */
  relists = 0

  private stopped = false
  private controller: AbortController | undefined
  private wake: (() => void) | undefined
  private readonly watcher: Watch
  private running: Promise<void> | undefined

  constructor(
    watcher: Watch,
    private readonly options: ListWatchOptions<T>,
  ) {
    this.watcher = watcher
    if (options.from) this.replace(options.from)
  }

  /** Lists (unless started `from` a list) and starts watching; resolves once the objects are known. */
  async start(): Promise<void> {
    let listed = this.resourceVersion !== ''
    while (!listed && !this.stopped) {
      try {
        this.replace(await this.options.list())
        listed = true
      } catch (error) {
        this.options.failed(error)
        await this.pause()
      }
    }
    this.running = this.run()
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.controller?.abort()
    this.wake?.()
    await this.running
  }

  private replace(list: ListedObjects<T>): void {
    this.objects.clear()
    for (const o of list.items) this.objects.set(keyOf(o), o)
    this.resourceVersion = list.resourceVersion
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const ending = await this.watchOnce()
      if (this.stopped) return
      if (ending.gone) {
        // The version expired: only a new list can say what changed since.
        try {
          this.replace(await this.options.list())
          this.relists++
          this.options.changed()
        } catch (error) {
          this.options.failed(error)
          await this.pause()
        }
        continue
      }
      if (ending.error !== undefined) {
        this.options.failed(ending.error)
        await this.pause()
      }
    }
  }

  private watchOnce(): Promise<Ending> {
    return new Promise<Ending>((resolve) => {
      let ended = false
      let status: Status | undefined
      const done = (error: unknown) => {
        ended = true
        this.controller = undefined
        if ((status && isGone(status)) || httpStatusOf(error) === 410) resolve({gone: true})
        else resolve({gone: false, error: error ?? (status ? new WatchStatusError(status) : undefined)})
      }
      const event = (type: string, object: KubernetesObject & Status) => {
        if (type === 'ERROR') {
          // The server ends the stream after it.
          status = object
          return
        }
        if (object.metadata?.resourceVersion) this.resourceVersion = object.metadata.resourceVersion
        if (type === 'ADDED' || type === 'MODIFIED') this.objects.set(keyOf(object), object as T)
        else if (type === 'DELETED') this.objects.delete(keyOf(object))
        else return
        this.options.changed()
      }
      const query = {
        ...this.options.query,
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.options.serverTimeoutSeconds,
      }
      this.watcher.watch(this.options.path, query, event, done).then(
        (controller) => {
          if (ended) return
          this.controller = controller
          if (this.stopped) controller.abort()
          else this.options.opened?.()
        },
        (error: unknown) => done(error),
      )
    })
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.options.retryMs ?? 1000)
      this.wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }
}
