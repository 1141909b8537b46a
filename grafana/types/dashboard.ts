// The shape of a dashboard file of this repository (grafana/dashboards/*.json), built from
// Grafana's own published types (@grafana/schema: the v0/v1 `Dashboard`, `Panel`, `RowPanel`,
// `AnnotationQuery`, `VariableModel`, `FieldConfig`, and each panel plugin's `Options` and
// `FieldConfig`). gen.mjs writes generated/<name>.ts, `export const dashboard: DashboardFile =
// <the file's JSON>;`, and `tsc` checks it: a property that the type does not have, a value of the
// wrong type or outside an enum, a missing required property are errors (object literals get
// excess-property checks).
//
// What this file adds to @grafana/schema, and why:
// - `Json<T>`: a JSON file spells an enum member by its value ("palette-classic", "absolute"),
//   which TypeScript does not accept for a string enum; Json<T> is T with each string enum
//   replaced by the union of its values. Numeric enums stay (a literal of a member's value fits).
// - `DeepPartial` on a panel's `options` and `fieldConfig.defaults.custom`: Grafana merges the
//   plugin's defaults into what a dashboard leaves out, so every option is optional there (a
//   misspelt or mistyped one is still an error).
// - `PromQuery`: the Prometheus data source's query model is not in @grafana/schema (it ships in
//   @grafana/prometheus, which pulls in the whole Grafana front end); declared here after its
//   generated `dataquery` type.
// - The Prometheus annotation: `target` holds the query (current form); `expr` and `step` at the
//   top (the legacy form, which Grafana rewrites on load) are not properties, so they fail.
// - Panel types: only the ones these dashboards use (row, stat, table, state-timeline,
//   timeseries); a panel of another type is an error until its plugin's types are added below.

import type {
  AnnotationQuery,
  DataQuery,
  Dashboard,
  DataSourceRef,
  FieldConfig,
  MatcherConfig,
  Panel,
  RowPanel,
  VariableModel,
} from '@grafana/schema';
import type * as StatCfg from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as StateTimelineCfg from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen';
import type * as TableCfg from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as TimeSeriesCfg from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

type IsAny<T> = 0 extends 1 & T ? true : false;

/** T as JSON spells it: every string enum becomes the union of its values. */
export type Json<T> =
  IsAny<T> extends true
    ? T
    : T extends string
      ? `${T}`
      : T extends number | boolean | null | undefined
        ? T
        : T extends ReadonlyArray<infer U>
          ? Array<Json<U>>
          : T extends object
            ? { [K in keyof T]: Json<T[K]> }
            : T;

/** Every property optional at every depth (Grafana fills in the plugin's defaults). */
export type DeepPartial<T> =
  IsAny<T> extends true
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<DeepPartial<U>>
      : T extends object
        ? { [K in keyof T]?: DeepPartial<T[K]> }
        : T;

/** A Prometheus query (Grafana's prometheus `dataquery` schema, `Prometheus extends DataQuery`). */
export interface PromQuery extends DataQuery {
  /** The PromQL expression. */
  expr: string;
  editorMode?: 'builder' | 'code';
  exemplar?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  instant?: boolean;
  range?: boolean;
  /** Minimum step (annotations: the step of the query). */
  interval?: string;
  /** @deprecated in Grafana; max data points instead. */
  intervalFactor?: number;
  legendFormat?: string;
}

/** Grafana's built-in "Annotations & Alerts". */
export interface BuiltInAnnotation extends Json<Omit<AnnotationQuery, 'builtIn' | 'target'>> {
  builtIn: 1;
  type: 'dashboard';
}

/**
 * An annotation from a Prometheus query: the query in `target` (with its `refId` and, as the
 * step, `interval`); the options below stay at the top level (the Prometheus plugin reads them
 * there). No `expr` or `step` at the top: that is the legacy form.
 */
export interface PromAnnotation extends Json<Omit<AnnotationQuery<PromQuery>, 'builtIn' | 'target'>> {
  builtIn?: 0;
  datasource: Json<DataSourceRef>;
  target: PromQuery;
  /** Legend-style template of the event's title, e.g. `{{target}}`. */
  titleFormat?: string;
  textFormat?: string;
  /** Comma-separated label names whose values become the event's tags. */
  tagKeys?: string;
  useValueForTime?: boolean;
}

/** `fieldConfig` of a panel whose plugin's per-field options (`custom`) are `Custom`. */
export interface FieldConfigOf<Custom> {
  defaults: Omit<Json<FieldConfig>, 'custom'> & { custom?: DeepPartial<Json<Custom>> };
  overrides: Array<{
    matcher: Json<MatcherConfig>;
    properties: Array<{ id: string; value?: unknown }>;
  }>;
}

/** A panel of plugin `Type` with the plugin's `Options` and per-field `Custom` options. */
export interface PanelOf<Type extends string, Options, Custom>
  extends Omit<Json<Panel>, 'type' | 'options' | 'fieldConfig' | 'targets' | 'datasource'> {
  type: Type;
  id: number;
  title: string;
  datasource: Json<DataSourceRef>;
  targets: PromQuery[];
  options?: DeepPartial<Json<Options>>;
  fieldConfig?: FieldConfigOf<Custom>;
}

/** The stat panel has no per-field options of its own. */
type NoCustom = Record<string, never>;

export type StatPanel = PanelOf<'stat', StatCfg.Options, NoCustom>;
export type TablePanel = PanelOf<'table', TableCfg.Options, TableCfg.FieldConfig>;
export type StateTimelinePanel = PanelOf<'state-timeline', StateTimelineCfg.Options, StateTimelineCfg.FieldConfig>;
export type TimeSeriesPanel = PanelOf<'timeseries', TimeSeriesCfg.Options, TimeSeriesCfg.FieldConfig>;
export type VizPanel = StatPanel | TablePanel | StateTimelinePanel | TimeSeriesPanel;

export interface Row extends Omit<Json<RowPanel>, 'panels'> {
  /** The panels of a collapsed row (empty while it is open: they follow it at the top level). */
  panels: VizPanel[];
}

/** A template variable; `definition` is the query's text that Grafana's query editor writes. */
export interface Variable extends Json<VariableModel> {
  definition?: string;
}

/** A dashboard file of this repository. */
export interface DashboardFile extends Omit<Json<Dashboard>, 'panels' | 'annotations' | 'templating'> {
  panels: Array<Row | VizPanel>;
  annotations: { list: Array<BuiltInAnnotation | PromAnnotation> };
  templating: { list: Variable[] };
}
