export declare const ROOT: string;
export declare const TARBALL: string;
export declare const NPM_NETWORK_FLAGS: string[];
export declare function exampleApps(): string[];
export declare function packTarball(): void;
export declare function isInstalled(dir: string): boolean;
export declare function installExample(dir: string, env?: NodeJS.ProcessEnv): Promise<void>;
export declare function installExamples(apps: string[], log?: (line: string) => void): Promise<void>;
