// A stage while it is built: its image so far, and the steps that add to it.
import type { PlannedStage, StageVariables } from '../parser/index.ts';
import { FileTree, type HistoryEntry, type ImageConfig, type Layer, type LayerEntry, type StepInputs, type Store } from '../layers/index.ts';

export class StageState {
  readonly config: ImageConfig;
  readonly layers: Layer[];
  readonly history: HistoryEntry[];
  /** Where this stage's own history entries start (the base image's come first). */
  readonly historyStart: number;
  readonly variables: StageVariables;
  /** Whether the stage set CMD itself (an ENTRYPOINT then keeps it). */
  cmdSet = false;
  /** The file tree of the first `treeLayers` layers: brought up to date when a step needs it. */
  private readonly fileTree = new FileTree();
  private treeLayers = 0;

  constructor(config: ImageConfig, layers: Layer[], history: HistoryEntry[], variables: StageVariables) {
    this.config = config;
    this.layers = layers;
    this.history = history;
    this.historyStart = history.length;
    this.variables = variables;
  }

  /** The stage's file tree with every layer so far applied. */
  async tree(store: Store): Promise<FileTree> {
    for (; this.treeLayers < this.layers.length; this.treeLayers++) await this.fileTree.applyLayer(store, this.layers[this.treeLayers]!);
    return this.fileTree;
  }

  /** Puts a layer on top; `entries`, when the layer was made here, keep the tree up to date without reading it back. */
  addLayer(layer: Layer, entries?: LayerEntry[]): void {
    const treeUpToDate = this.treeLayers === this.layers.length;
    this.layers.push(layer);
    if (entries && treeUpToDate) {
      this.fileTree.apply(entries.map((entry) => [entry.path, entry]));
      this.treeLayers++;
    }
  }

  /** A history entry; `created` is left for Timestamps.fillCreated when the step made no layer of its own. */
  addHistory(createdBy: string, emptyLayer: boolean, created?: string): void {
    this.history.push({ ...(created ? { created } : {}), created_by: createdBy, ...(emptyLayer ? { empty_layer: true } : { comment: 'buildkit.dockerfile.v0' }) });
  }
}

/** A stage as the build's lines name it: `NAME` or `stage-N`, after the build's label (its platform) if it has one. */
export function stageLabel(planned: PlannedStage, label?: string): string {
  const name = planned.stage.name ?? `stage-${planned.stage.index}`;
  return label ? `${label} ${name}` : name;
}

/** A step whose result can come from the cache: its inputs, and how to make its layer entries. */
export interface CachedStep {
  /** The instruction, as miss explanations start (`COPY app/`). */
  label: string;
  /**
   * The inputs; or, when they need the content hashes of files the layer reads anyway, a function
   * called once the layer is written (the step is then run first, and a hit found after replaces it).
   */
  inputs: Omit<StepInputs, 'parent'> | ((contentHashes: ReadonlyMap<string, string>) => Omit<StepInputs, 'parent'>);
  createdBy: string;
  /** Does the step's work: the entries of its layer (none: no layer), and a directory already holding them. */
  make: () => Promise<{ entries: LayerEntry[]; dir?: string }>;
}
